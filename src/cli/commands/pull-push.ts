import type { IncomingMessage } from 'node:http';
import { ApiError, jsonLines } from '../../api-client/client.ts';
import { CredentialStore, encodeRegistryAuth } from '../../distribution/credentials.ts';
import { CliError, type Command, type CommandContext, UsageError, flags } from '../command.ts';

/** A name as the user typed it, split the way Docker's reference grammar does. */
interface NameParts {
  /** Registry host (`docker.io` when none is named). */
  domain: string;
  /** Canonical repository: `docker.io/library/busybox`, `127.0.0.1:5000/app`. */
  repository: string;
  /** The repository as given, without tag or digest (what the API's `fromImage` takes). */
  given: string;
  tag?: string;
  digest?: string;
}

/** Splits `[host[:port]/]path[:tag][@digest]`; the daemon checks the grammar itself. */
export function splitName(name: string): NameParts {
  let rest = name;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const slash = rest.indexOf('/');
  const first = slash < 0 ? '' : rest.slice(0, slash);
  const named = slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase());
  const domain = named ? first : 'docker.io';
  let path = named ? rest.slice(slash + 1) : rest;
  if (domain === 'docker.io' && !path.includes('/')) path = `library/${path}`;
  return { domain, repository: `${domain}/${path}`, given: rest, tag, digest };
}

/** The `X-Registry-Auth` header the docker CLI sends: config.json's credentials for the image's registry. */
async function registryAuth(domain: string): Promise<string> {
  const creds = await new CredentialStore().get(domain);
  return encodeRegistryAuth(creds, domain === 'docker.io' ? undefined : domain);
}

interface Message {
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  errorDetail?: { message?: string };
  error?: string;
  aux?: Record<string, unknown>;
}

/**
 * Prints Docker's JSON progress stream. On a terminal, each layer keeps one
 * line that is redrawn in place (cursor up, clear, write, cursor down); a line
 * without an ID ends the block. Elsewhere, only the status changes are
 * printed, one line each, as `docker pull` does into a pipe.
 */
class ProgressPrinter {
  #write: (s: string) => void;
  #tty: boolean;
  #lines = new Map<string, number>();

  constructor(write: (s: string) => void, tty: boolean) {
    this.#write = write;
    this.#tty = tty;
  }

  print(m: Message): void {
    if (m.aux || m.status === undefined) return;
    if (!m.id) {
      this.#lines.clear();
      this.#write(`${m.status}\n`);
      return;
    }
    const moving = m.progressDetail?.current !== undefined;
    if (!this.#tty) {
      if (!moving) this.#write(`${m.id}: ${m.status}\n`);
      return;
    }
    let line = this.#lines.get(m.id);
    if (line === undefined) {
      line = this.#lines.size;
      this.#lines.set(m.id, line);
      this.#write('\n');
    }
    const up = this.#lines.size - line;
    const text = `${m.id}: ${m.status}${moving && m.progress ? ` ${m.progress}` : ''}`;
    this.#write(`\x1b[${up}A\r\x1b[2K${text}\x1b[${up}B\r`);
  }
}

/** Reads the daemon's message stream into the printer; an in-band error becomes the CLI's error, as docker prints it. */
async function follow(res: IncomingMessage, printer: ProgressPrinter | undefined): Promise<Message[]> {
  const all: Message[] = [];
  for await (const m of jsonLines<Message>(res)) {
    if (m.errorDetail || m.error) throw new CliError(m.errorDetail?.message ?? String(m.error), 1);
    all.push(m);
    printer?.print(m);
  }
  return all;
}

export interface PullRequest {
  name: string;
  allTags?: boolean;
  platform?: string;
  quiet?: boolean;
  /** Where progress goes: stdout for `pull`, stderr when `run` pulls a missing image. */
  out: (s: string) => void;
  tty: boolean;
}

/** Pulls through the daemon (`POST /images/create?fromImage=`); returns the reference pulled, as docker prints it. */
export async function pullImage(ctx: CommandContext, req: PullRequest): Promise<string> {
  const n = splitName(req.name);
  if (req.allTags && (n.tag || n.digest)) throw new CliError('tag can\'t be used with --all-tags/-a', 1);
  let tag = n.digest ?? n.tag;
  if (!tag && !req.allTags) {
    tag = 'latest';
    if (!req.quiet) req.out('Using default tag: latest\n');
  }
  const res = await ctx.client().request('POST', '/images/create', {
    query: { fromImage: n.given, tag, platform: req.platform },
    headers: { 'X-Registry-Auth': await registryAuth(n.domain) },
  });
  await follow(res, req.quiet ? undefined : new ProgressPrinter(req.out, req.tty));
  return !tag ? n.repository : n.digest ? `${n.repository}@${n.digest}` : `${n.repository}:${tag}`;
}

export const pull: Command = {
  usage: `Usage:  berth pull [OPTIONS] NAME[:TAG|@DIGEST]

Download an image from a registry

Aliases:
  berth image pull, berth pull

Options:
  -a, --all-tags          Download all tagged images in the repository
      --platform string   Set platform if server is multi-platform capable
  -q, --quiet             Suppress verbose output
`,
  description: 'Download an image from a registry',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      'all-tags': { type: 'boolean', short: 'a' }, platform: { type: 'string' }, quiet: { type: 'boolean', short: 'q' },
    }, this.usage);
    if (positionals.length !== 1) throw new UsageError(`"${ctx.name}" requires exactly 1 argument.\nSee '${ctx.name} --help'.\n\n${this.usage.split('\n\n')[0]}\n\nDownload an image from a registry`);
    const ref = await pullImage(ctx, {
      name: positionals[0], allTags: values['all-tags'], platform: values.platform, quiet: values.quiet, out: ctx.io.out, tty: ctx.io.isTTY,
    });
    ctx.io.out(`${ref}\n`);
  },
};

export const push: Command = {
  usage: `Usage:  berth push [OPTIONS] NAME[:TAG]

Upload an image to a registry

Aliases:
  berth image push, berth push

Options:
  -a, --all-tags   Push all tags of an image to the repository
  -q, --quiet      Suppress verbose output
`,
  description: 'Upload an image to a registry',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { 'all-tags': { type: 'boolean', short: 'a' }, quiet: { type: 'boolean', short: 'q' } }, this.usage);
    if (positionals.length !== 1) throw new UsageError(`"${ctx.name}" requires exactly 1 argument.\nSee '${ctx.name} --help'.\n\n${this.usage.split('\n\n')[0]}\n\nUpload an image to a registry`);
    const n = splitName(positionals[0]);
    if (n.digest) throw new CliError(`cannot push a digest reference`, 1);
    if (values['all-tags'] && n.tag) throw new CliError('tag can\'t be used with --all-tags/-a', 1);
    let tag = n.tag;
    if (!tag && !values['all-tags']) {
      tag = 'latest';
      if (!values.quiet) ctx.io.out('Using default tag: latest\n');
    }
    const res = await ctx.client().request('POST', `/images/${encodeURIComponent(n.given)}/push`, {
      query: { tag }, headers: { 'X-Registry-Auth': await registryAuth(n.domain) },
    });
    await follow(res, values.quiet ? undefined : new ProgressPrinter(ctx.io.out, ctx.io.isTTY));
    if (values.quiet) ctx.io.out(`${tag ? `${n.given}:${tag}` : n.given}\n`);
  },
};

/**
 * `run` and `create` with Docker's `--pull missing|always|never`: `always`
 * pulls first; `missing` (the default) pulls when the daemon has no such
 * image and then creates again; `never` leaves the daemon's 404 as it is.
 */
export async function createWithPull<T>(ctx: CommandContext, image: string, opts: { pull?: string; platform?: string }, create: () => Promise<T>): Promise<T> {
  const policy = opts.pull ?? 'missing';
  if (policy !== 'missing' && policy !== 'always' && policy !== 'never') {
    throw new UsageError(`invalid pull option: '${policy}': must be one of "always", "missing" or "never"`, 125);
  }
  // A pull that fails is reported as the daemon's error, as docker run reports it.
  const pullIt = () => pullImage(ctx, { name: image, platform: opts.platform, out: ctx.io.err, tty: Boolean(process.stderr.isTTY) }).catch((e) => {
    throw e instanceof CliError ? new ApiError(500, e.message) : e;
  });
  if (policy === 'always') await pullIt();
  try {
    return await create();
  } catch (e) {
    if (policy !== 'missing' || !(e instanceof ApiError && e.status === 404 && /^No such image/.test(e.message))) throw e;
    ctx.io.err(`Unable to find image '${e.message.replace(/^No such image: /, '')}' locally\n`);
    await pullIt();
    return create();
  }
}
