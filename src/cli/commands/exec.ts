import { readFileSync } from 'node:fs';
import { ApiError } from '../../api-client/client.ts';
import { type Command, CliError, UsageError, flags, requireArgs, splitAtFirstPositional } from '../command.ts';
import { openSession } from '../session.ts';

const EXEC_OPTIONS = {
  interactive: { type: 'boolean', short: 'i' }, tty: { type: 'boolean', short: 't' }, detach: { type: 'boolean', short: 'd' },
  env: { type: 'string', short: 'e', multiple: true }, 'env-file': { type: 'string', multiple: true }, workdir: { type: 'string', short: 'w' },
  user: { type: 'string', short: 'u' }, privileged: { type: 'boolean' }, 'detach-keys': { type: 'string' },
} as const;

const EXEC_USAGE = `Usage:  berth exec [OPTIONS] CONTAINER COMMAND [ARG...]

Execute a command in a running container

Options:
  -d, --detach               Detached mode: run command in the background
      --detach-keys string   Override the key sequence for detaching a container
  -e, --env list             Set environment variables
      --env-file list        Read in a file of environment variables
  -i, --interactive          Keep STDIN open even if not attached
      --privileged           Give extended privileges to the command
  -t, --tty                  Allocate a pseudo-TTY
  -u, --user string          Username or UID (format: "<name|uid>[:<group|gid>]")
  -w, --workdir string       Working directory inside the container
`;

/** docker's -e/--env-file: KEY=VALUE, or KEY taken from our environment. */
function envList(envFiles: string[] | undefined, env: string[] | undefined): string[] {
  const out: string[] = [];
  const add = (e: string) => {
    if (e.includes('=')) out.push(e);
    else if (process.env[e] !== undefined) out.push(`${e}=${process.env[e]}`);
  };
  for (const f of envFiles ?? []) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch (e) {
      throw new CliError(`open ${f}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (e as Error).message}`, 125);
    }
    for (const line of text.split('\n')) {
      const l = line.trim();
      if (l && !l.startsWith('#')) add(l);
    }
  }
  for (const e of env ?? []) add(e);
  return out;
}

const daemonError = (e: unknown): never => {
  if (e instanceof ApiError) throw new CliError(`Error response from daemon: ${e.message}`, 1);
  throw e;
};

export const exec: Command = {
  usage: EXEC_USAGE,
  description: 'Execute a command in a running container',
  async run(ctx) {
    const split = splitAtFirstPositional(ctx.args, EXEC_OPTIONS);
    const { values } = flags({ ...ctx, args: split.flags }, EXEC_OPTIONS, this.usage);
    if (split.rest.length < 2) {
      throw new UsageError(`"berth exec" requires at least 2 arguments.\nSee 'berth exec --help'.\n\nUsage:  berth exec [OPTIONS] CONTAINER COMMAND [ARG...]\n\nExecute a command in a running container`, 1);
    }
    const [container, ...cmd] = split.rest;
    const tty = Boolean(values.tty);
    const interactive = Boolean(values.interactive);
    const detach = Boolean(values.detach);
    if (tty && interactive && !detach && !process.stdin.isTTY) throw new CliError('the input device is not a TTY', 1);
    const client = ctx.client();
    const size = tty && process.stdout.isTTY && process.stdout.rows ? [process.stdout.rows, process.stdout.columns] : undefined;
    const created = await client.json<{ Id: string }>('POST', `/containers/${encodeURIComponent(container)}/exec`, {
      body: {
        User: values.user ?? '', Privileged: Boolean(values.privileged), Tty: tty, AttachStdin: interactive && !detach,
        AttachStdout: !detach, AttachStderr: !detach, Detach: detach, DetachKeys: values['detach-keys'] ?? '',
        Env: envList(values['env-file'], values.env), WorkingDir: values.workdir ?? '', Cmd: cmd, ConsoleSize: size,
      },
    }).catch(daemonError);
    const id = created.Id;
    if (detach) {
      await client.request('POST', `/exec/${id}/start`, { body: { Detach: true, Tty: tty } }).then((r) => void r.resume()).catch(daemonError);
      return 0;
    }
    const stream = await client.upgrade('POST', `/exec/${id}/start`, { body: { Detach: false, Tty: tty } }).catch(daemonError);
    const session = openSession({
      stream, tty, stdin: interactive, detachKeys: values['detach-keys'],
      resize: (h, w) => client.request('POST', `/exec/${id}/resize`, { query: { h, w } }).then((r) => void r.resume()),
    });
    try {
      session.startResizing();
      if ((await session.done) === 'detached') return 0;
    } finally {
      session.restore();
      stream.destroy();
    }
    const info = await client.json<{ ExitCode: number | null; Running: boolean }>('GET', `/exec/${id}/json`).catch(daemonError);
    return info.ExitCode ?? 0;
  },
};

export const attach: Command = {
  usage: `Usage:  berth attach [OPTIONS] CONTAINER

Attach local standard input, output, and error streams to a running container

Options:
      --detach-keys string   Override the key sequence for detaching a container
      --no-stdin             Do not attach STDIN
      --sig-proxy            Proxy all received signals to the process (default true)
`,
  description: 'Attach local standard input, output, and error streams to a running container',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { 'detach-keys': { type: 'string' }, 'no-stdin': { type: 'boolean' }, 'sig-proxy': { type: 'boolean' } }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const client = ctx.client();
    const c = await client.json<{ Id: string; State: { Running: boolean; Paused: boolean }; Config: { Tty: boolean; OpenStdin: boolean } }>(
      'GET', `/containers/${encodeURIComponent(positionals[0])}/json`).catch(daemonError);
    if (!c.State.Running) throw new CliError('You cannot attach to a stopped container, start it first', 1);
    if (c.State.Paused) throw new CliError('You cannot attach to a paused container, unpause it first', 1);
    const stdin = c.Config.OpenStdin && !values['no-stdin'];
    const tty = Boolean(c.Config.Tty);
    if (tty && stdin && !process.stdin.isTTY) throw new CliError('the input device is not a TTY', 1);
    const stream = await client.upgrade('POST', `/containers/${c.Id}/attach`, {
      query: { stream: true, stdin, stdout: true, stderr: true, detachKeys: values['detach-keys'] },
    }).catch(daemonError);
    const session = openSession({
      stream, tty, stdin, detachKeys: values['detach-keys'],
      resize: (h, w) => client.request('POST', `/containers/${c.Id}/resize`, { query: { h, w } }).then((r) => void r.resume()),
    });
    try {
      session.startResizing();
      // As docker attach: a detach is reported as moby/term's EscapeError, exit 1.
      if ((await session.done) === 'detached') throw new CliError('read escape sequence', 1);
    } finally {
      session.restore();
      stream.destroy();
    }
    const r = await client.json<{ StatusCode: number }>('POST', `/containers/${c.Id}/wait`).catch(daemonError);
    return r.StatusCode;
  },
};
