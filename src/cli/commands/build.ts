// `berth build`. berth talks to a daemon on this machine (a unix socket), so it hands over the
// context directory by path rather than uploading it as a tar: the daemon reads only the files
// COPY and ADD use. `-` reads a tar context from stdin, as docker does; BERTH_BUILD_CONTEXT=tar
// sends a directory as a tar anyway (to measure or test the path remote clients take).
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { jsonLines } from '../../api-client/client.ts';
import { CliError, type Command, type CommandContext, flags, requireArgs, writeOutput } from '../command.ts';

interface StepEvent {
  id: number;
  stage: string;
  text: string;
  status: 'running' | 'cached' | 'done' | 'error';
  ms?: number;
}

interface BuildMessage {
  stream?: string;
  aux?: { ID?: string };
  berth?: StepEvent;
  errorDetail?: { message?: string; code?: number };
  error?: string;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/**
 * The live display on a terminal: finished steps scroll up as one line each (with CACHED or their
 * time); running steps stay at the bottom with a timer and the last lines of their output.
 */
class LiveProgress {
  #write: (s: string) => void;
  #running = new Map<number, { e: StepEvent; started: number }>();
  #tail: string[] = [];
  #drawn = 0;
  #timer: NodeJS.Timeout;
  #frame = 0;
  #started = performance.now();

  constructor(write: (s: string) => void) {
    this.#write = write;
    this.#timer = setInterval(() => this.#redraw(), 100);
  }

  step(e: StepEvent): void {
    if (e.status === 'running') {
      this.#running.set(e.id, { e, started: performance.now() });
      this.#tail = [];
    } else {
      this.#running.delete(e.id);
      const mark = e.status === 'cached' ? 'CACHED' : e.status === 'error' ? 'ERROR' : `${((e.ms ?? 0) / 1000).toFixed(1)}s`;
      this.#print(`\x1b[34m=> [${e.stage}] ${e.text}\x1b[0m  ${mark}\n`);
    }
    this.#redraw();
  }

  output(text: string): void {
    // The classic builder's own markers (` ---> …`, `Step N/M`) are the display's job; only the step's output is shown.
    const lines = text.split('\n').filter((l) => l.trim() !== '' && !/^ ---> |^Step \d+\/\d+ : /.test(l));
    this.#tail = [...this.#tail, ...lines].slice(-5);
  }

  /** Prints above the live block. */
  #print(s: string): void {
    this.#clear();
    this.#write(s);
  }

  #clear(): void {
    if (this.#drawn > 0) this.#write(`\x1b[${this.#drawn}A\r\x1b[J`);
    this.#drawn = 0;
  }

  #redraw(): void {
    this.#clear();
    const lines: string[] = [];
    const total = ((performance.now() - this.#started) / 1000).toFixed(1);
    lines.push(`[+] Building ${total}s`);
    this.#frame = (this.#frame + 1) % SPINNER.length;
    for (const { e, started } of this.#running.values()) {
      lines.push(`${SPINNER[this.#frame]} [${e.stage}] ${e.text.slice(0, 100)}  ${((performance.now() - started) / 1000).toFixed(1)}s`);
    }
    if (this.#running.size) for (const t of this.#tail) lines.push(`\x1b[2m  │ ${t.slice(0, 120)}\x1b[0m`);
    this.#write(lines.map((l) => `${l}\n`).join(''));
    this.#drawn = lines.length;
  }

  finish(): void {
    clearInterval(this.#timer);
    this.#redraw();
  }
}

/** `--secret id=x,src=path` (or `env=VAR`): the secret's bytes, sent to the daemon for this build only. */
async function readSecret(spec: string): Promise<[string, Buffer]> {
  const kv = Object.fromEntries(spec.split(',').map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? [p, ''] : [p.slice(0, eq), p.slice(eq + 1)];
  }));
  const id = kv.id;
  if (!id) throw new CliError(`invalid secret "${spec}": an id is required`);
  const src = kv.src ?? kv.source;
  if (src) return [id, await readFile(src).catch(() => { throw new CliError(`failed to read secret ${id} from ${src}`); })];
  const env = kv.env ?? id;
  const v = process.env[env];
  if (v === undefined) throw new CliError(`secret ${id}: no src given and $${env} is not set`);
  return [id, Buffer.from(v)];
}

function tarOf(dir: string): NodeJS.ReadableStream & AsyncIterable<Uint8Array> {
  const child = spawn('tar', ['-C', dir, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return child.stdout as NodeJS.ReadableStream & AsyncIterable<Uint8Array>;
}

/** `--output type=…,dest=…` */
function parseOutput(spec: string): { type: string; dest: string } {
  const kv = Object.fromEntries(spec.split(',').map((p) => {
    const eq = p.indexOf('=');
    return eq < 0 ? ['dest', p] : [p.slice(0, eq), p.slice(eq + 1)];
  }));
  const type = kv.type ?? 'local';
  if (!['oci', 'docker', 'tar', 'local'].includes(type)) throw new CliError(`unsupported output type "${type}": use oci, docker, tar or local`);
  if (!kv.dest) throw new CliError(`--output ${spec}: dest= is required`);
  return { type, dest: kv.dest };
}

async function exportImage(ctx: CommandContext, id: string, out: { type: string; dest: string }): Promise<void> {
  const client = ctx.client();
  if (out.type === 'oci' || out.type === 'docker') {
    // berth's save is Docker 25's combined form: an OCI layout that docker load also reads.
    const res = await client.request('GET', `/images/${encodeURIComponent(id)}/get`);
    await writeOutput(res, out.dest === '-' ? undefined : out.dest, ctx.io.stdout);
    return;
  }
  const created = await client.json<{ Id: string }>('POST', '/containers/create', { body: { Image: id, Cmd: ['true'] } });
  try {
    const res = await client.request('GET', `/containers/${created.Id}/export`);
    if (out.type === 'tar') {
      await writeOutput(res, out.dest === '-' ? undefined : out.dest, ctx.io.stdout);
      return;
    }
    const { mkdir } = await import('node:fs/promises');
    await mkdir(out.dest, { recursive: true });
    const tar = spawn('tar', ['-C', out.dest, '-xf', '-', '--no-same-owner'], { stdio: ['pipe', 'inherit', 'inherit'] });
    res.pipe(tar.stdin!);
    const code = await new Promise<number | null>((r) => tar.on('close', r));
    if (code !== 0) throw new CliError(`extracting the image into ${out.dest} failed`);
  } finally {
    await client.request('DELETE', `/containers/${created.Id}`, { query: { force: true } }).then((r) => r.resume()).catch(() => {});
  }
}

export const build: Command = {
  usage: `Usage:  berth build [OPTIONS] PATH | -

Build an image from a Dockerfile

Aliases:
  berth image build, berth build

Options:
      --build-arg stringArray   Set build-time variables
  -f, --file string             Name of the Dockerfile (default: "PATH/Dockerfile")
      --iidfile string          Write the image ID to the file
      --label stringArray       Set metadata for an image
      --no-cache                Do not use cache when building the image
  -o, --output stringArray      Output destination (format: "type=local,dest=path"; types oci, docker, tar, local)
      --platform string         Set the target platform for the build
      --progress string         Set type of progress output ("auto", "plain", "tty", "quiet") (default "auto")
      --pull                    Always attempt to pull all referenced images
      --push                    Push the image to its registry after the build
  -q, --quiet                   Suppress the build output and print image ID on success
      --secret stringArray      Secret to expose to the build (format: "id=mysecret[,src=/local/secret]")
      --squash                  Squash the new layers into one
  -t, --tag stringArray         Name and optionally a tag (format: "name:tag")
      --target string           Set the target build stage to build
`,
  description: 'Build an image from a Dockerfile',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      'build-arg': { type: 'string', multiple: true }, file: { type: 'string', short: 'f' }, iidfile: { type: 'string' },
      label: { type: 'string', multiple: true }, 'no-cache': { type: 'boolean' }, output: { type: 'string', short: 'o', multiple: true },
      platform: { type: 'string' }, progress: { type: 'string' }, pull: { type: 'boolean' }, push: { type: 'boolean' },
      quiet: { type: 'boolean', short: 'q' }, secret: { type: 'string', multiple: true }, squash: { type: 'boolean' },
      tag: { type: 'string', short: 't', multiple: true }, target: { type: 'string' },
    }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const progress = values.quiet ? 'quiet' : values.progress ?? 'auto';
    if (!['auto', 'plain', 'tty', 'quiet'].includes(progress)) throw new CliError(`invalid progress mode "${progress}": use auto, plain, tty or quiet`);
    const live = progress === 'tty' || (progress === 'auto' && ctx.io.isTTY);
    const outputs = (values.output ?? []).map(parseOutput);

    const buildArgs: Record<string, string | null> = {};
    for (const a of values['build-arg'] ?? []) {
      const eq = a.indexOf('=');
      // `--build-arg NAME` takes NAME's value from this environment, as docker does.
      if (eq < 0) buildArgs[a] = process.env[a] ?? null;
      else buildArgs[a.slice(0, eq)] = a.slice(eq + 1);
    }
    const labels: Record<string, string> = {};
    for (const l of values.label ?? []) {
      const eq = l.indexOf('=');
      labels[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? '' : l.slice(eq + 1);
    }
    const secrets: Record<string, string> = {};
    for (const s of values.secret ?? []) {
      const [id, bytes] = await readSecret(s);
      secrets[id] = bytes.toString('base64');
    }

    const path = positionals[0];
    let tmp: string | undefined;
    const query: Record<string, string | string[] | boolean | undefined> = {
      t: values.tag ?? [], buildargs: JSON.stringify(buildArgs), labels: JSON.stringify(labels), target: values.target,
      nocache: values['no-cache'], pull: values.pull, platform: values.platform, q: progress === 'quiet', squash: values.squash,
      ...(live ? { progress: 'berth' } : {}),
    };
    let stream: (NodeJS.ReadableStream & AsyncIterable<Uint8Array>) | undefined;
    try {
      if (values.file === '-') {
        tmp = await mkdtemp(join(tmpdir(), 'berth-build-'));
        const chunks: Buffer[] = [];
        for await (const c of ctx.io.stdin) chunks.push(Buffer.from(c));
        await writeFile(join(tmp, 'Dockerfile'), Buffer.concat(chunks));
      }
      if (path === '-') {
        if (values.file === '-') throw new CliError('invalid argument: can\'t use stdin for both build context and dockerfile');
        stream = ctx.io.stdin;
        query.dockerfile = values.file;
      } else {
        const dir = resolve(path);
        const dockerfile = values.file === '-' ? join(tmp!, 'Dockerfile') : values.file ? resolve(values.file) : undefined;
        if (process.env.BERTH_BUILD_CONTEXT === 'tar') {
          if (dockerfile && !dockerfile.startsWith(`${dir}/`)) throw new CliError('with BERTH_BUILD_CONTEXT=tar the Dockerfile must be inside the context');
          stream = tarOf(dir);
          query.dockerfile = dockerfile?.slice(dir.length + 1);
        } else {
          query.contextdir = dir;
          query.dockerfile = dockerfile;
        }
      }
      const headers: Record<string, string> = Object.keys(secrets).length
        ? { 'X-Berth-Build-Secrets': Buffer.from(JSON.stringify(secrets)).toString('base64') } : {};
      const res = await ctx.client().request('POST', '/build', { query, headers, ...(stream ? { stream } : { body: undefined }) });
      const display = live ? new LiveProgress((s) => ctx.io.err(s)) : undefined;
      let id = '';
      let failure: BuildMessage | undefined;
      for await (const m of jsonLines<BuildMessage>(res)) {
        if (m.errorDetail || m.error) failure = m;
        else if (m.aux?.ID) id = m.aux.ID;
        else if (m.berth) display?.step(m.berth);
        else if (m.stream !== undefined && progress !== 'quiet') {
          if (display) display.output(m.stream);
          else ctx.io.out(m.stream);
        }
      }
      display?.finish();
      // A failed RUN's exit code becomes the CLI's, as docker's legacy builder does.
      if (failure) throw new CliError(failure.errorDetail?.message ?? String(failure.error), failure.errorDetail?.code || 1);
      if (!id) throw new CliError('the build ended without an image ID');
      if (values.iidfile) await writeFile(values.iidfile, id);
      if (progress === 'quiet') ctx.io.out(`${id}\n`);
      else if (display) ctx.io.err(`=> writing image ${id}\n${(values.tag ?? []).map((t) => `=> naming to ${t}\n`).join('')}`);
      for (const o of outputs) await exportImage(ctx, id, o);
      if (values.push) {
        if (!values.tag?.length) throw new CliError('--push needs a name: use -t');
        const { push } = await import('./pull-push.ts');
        for (const t of values.tag) await push.run({ ...ctx, name: 'berth push', args: [...(progress === 'quiet' ? ['-q'] : []), t] });
      }
    } finally {
      if (tmp) await rm(tmp, { recursive: true, force: true });
    }
  },
};
