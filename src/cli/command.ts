import { createReadStream, createWriteStream, type ReadStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { type ApiClient, ApiError } from '../api-client/client.ts';

/** A usage mistake: printed with a pointer to --help; exits 125 for flags, as docker does, else 1. */
export class UsageError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** An error already phrased for the user, with its exit code. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
}

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  stdin: NodeJS.ReadableStream & AsyncIterable<Uint8Array>;
  stdout: NodeJS.WriteStream;
  isTTY: boolean;
}

export interface CommandContext {
  /** The command as the user typed it, for messages: `berth image ls`. */
  name: string;
  args: string[];
  client: () => ApiClient;
  io: Io;
}

export interface Command {
  usage: string;
  description: string;
  run(ctx: CommandContext): Promise<number | void>;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** parseArgs with docker's messages: `unknown flag: --x`, and `--help`. */
export function flags<O extends Options>(ctx: CommandContext, options: O, usage: string) {
  try {
    const parsed = parseArgs({ args: ctx.args, options: { ...options, help: { type: 'boolean' } }, allowPositionals: true, strict: true });
    if ((parsed.values as Record<string, unknown>).help) throw new HelpRequested(usage);
    return parsed as unknown as { values: ParsedValues<O>; positionals: string[] };
  } catch (e) {
    if (e instanceof HelpRequested) throw e;
    const code = (e as { code?: string }).code;
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const m = /'(-{1,2}[^']+)'/.exec((e as Error).message);
      throw new UsageError(`unknown flag: ${m ? m[1] : '?'}\nSee '${ctx.name} --help'.`, 125);
    }
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      throw new UsageError(`${(e as Error).message.split('\n')[0]}\nSee '${ctx.name} --help'.`, 125);
    }
    throw e;
  }
}

type ParsedValues<O extends Options> = {
  [K in keyof O]: O[K] extends { type: 'boolean'; multiple: true } ? boolean[] | undefined
    : O[K] extends { type: 'string'; multiple: true } ? string[] | undefined
    : O[K] extends { type: 'boolean' } ? boolean | undefined
    : string | undefined;
};

export class HelpRequested extends Error {
  readonly usage: string;
  constructor(usage: string) {
    super('help');
    this.usage = usage;
  }
}

export function requireArgs(ctx: CommandContext, positionals: string[], min: number, max: number, usage: string): void {
  if (positionals.length >= min && positionals.length <= max) return;
  const what = min === max ? `exactly ${min} argument${min === 1 ? '' : 's'}` : max === Infinity ? `at least ${min} argument${min === 1 ? '' : 's'}` : `between ${min} and ${max} arguments`;
  throw new UsageError(`"${ctx.name}" requires ${what}.\nSee '${ctx.name} --help'.\n\nUsage:  ${usage.split('\n')[0]}`);
}

/** Docker's `--filter k=v` flags as the API's filters JSON. */
export function filtersParam(list: string[] | undefined): string | undefined {
  if (!list || list.length === 0) return undefined;
  const out: Record<string, Record<string, boolean>> = {};
  for (const f of list) {
    const i = f.indexOf('=');
    if (i <= 0) throw new CliError(`bad format of filter (expected name=value)`);
    const k = f.slice(0, i).trim().toLowerCase();
    (out[k] ??= {})[f.slice(i + 1)] = true;
  }
  return JSON.stringify(out);
}

/** Asks y/N on the terminal, as docker's prune commands do. */
export async function confirm(io: Io, question: string): Promise<boolean> {
  io.out(`${question} [y/N] `);
  for await (const chunk of io.stdin) {
    const answer = Buffer.from(chunk).toString('utf8').trim().toLowerCase();
    return answer === 'y' || answer === 'yes';
  }
  return false;
}

/** Opens a file the user named for reading, failing with docker's wording before any request is made. */
export async function openInput(path: string): Promise<ReadStream> {
  const stream = createReadStream(path, { highWaterMark: 1 << 20 });
  await new Promise<void>((resolve, reject) => {
    stream.once('open', () => resolve());
    stream.once('error', (e: NodeJS.ErrnoException) => reject(new CliError(`open ${path}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`)));
  });
  return stream;
}

/**
 * Splits `[OPTIONS] IMAGE [COMMAND] [ARG...]`: options end at the first
 * positional, and everything after it belongs to the container's command,
 * flags included (`run busybox ls -la`).
 */
export function splitAtFirstPositional(args: string[], options: Options): { flags: string[]; rest: string[] } {
  const takesValue = (a: string): boolean => {
    if (a.startsWith('--')) {
      if (a.includes('=')) return false;
      return options[a.slice(2)]?.type === 'string';
    }
    // A group like -it or -dp8080: the value-taking flag may come last in the group.
    for (let i = 1; i < a.length; i++) {
      const entry = Object.values(options).find((o) => o.short === a[i]);
      if (entry?.type === 'string') return i === a.length - 1;
    }
    return false;
  };
  let i = 0;
  while (i < args.length) {
    const a = args[i];
    if (a === '--') return { flags: args.slice(0, i), rest: args.slice(i + 1) };
    if (!a.startsWith('-') || a === '-') break;
    i += takesValue(a) ? 2 : 1;
  }
  return { flags: args.slice(0, i), rest: args.slice(i) };
}

/** Writes an archive to `output`, which appears only whole (written beside its name, then renamed), or to stdout. */
export async function writeOutput(src: AsyncIterable<Uint8Array> | NodeJS.ReadableStream, output: string | undefined, stdout: NodeJS.WriteStream): Promise<void> {
  if (!output) {
    await pipeline(src as NodeJS.ReadableStream, stdout, { end: false });
    return;
  }
  const tmp = `${output}.tmp-${process.pid}`;
  try {
    await pipeline(src as NodeJS.ReadableStream, createWriteStream(tmp));
    await rename(tmp, output);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * `volume inspect`, `network inspect`: each named object's JSON from `path(name)`, printed as
 * one JSON array or through a template, then the daemon's error for each that failed (exit 1).
 */
export async function inspectEach(ctx: CommandContext, names: string[], path: (name: string) => string, format: string | undefined,
  query?: Record<string, string | number | boolean | undefined>): Promise<number> {
  const { parseTemplate } = await import('./format/template.ts');
  const tmpl = format && format !== 'json' ? parseTemplate(format.replace(/\\t/g, '\t').replace(/\\n/g, '\n')) : undefined;
  const found: unknown[] = [];
  const errors: string[] = [];
  for (const n of names) {
    try {
      found.push(await ctx.client().json('GET', path(encodeURIComponent(n)), { query }));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      errors.push(`Error response from daemon: ${e.message}`);
    }
  }
  ctx.io.out(tmpl ? found.map((v) => tmpl.execute(v) + '\n').join('') : JSON.stringify(found, null, 4) + '\n');
  if (!errors.length) return 0;
  ctx.io.err(errors.join('\n') + '\n');
  return 1;
}

/**
 * `volume rm`, `network rm`: DELETE each named object, printing its name, or the daemon's error
 * (exit 1 after trying them all). `ignore` lets a caller pass over some errors (`network rm -f` of a missing one).
 */
export async function removeEach(ctx: CommandContext, names: string[], path: (name: string) => string,
  opts: { query?: Record<string, string | number | boolean | undefined>; ignore?: (e: ApiError) => boolean } = {}): Promise<number> {
  let failed = false;
  for (const n of names) {
    try {
      await ctx.client().request('DELETE', path(encodeURIComponent(n)), { query: opts.query }).then((r) => r.resume());
      ctx.io.out(`${n}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (opts.ignore?.(e)) continue;
      ctx.io.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

/** `k=v` pairs (`--label`, `--opt`) as a map; a bare key has the empty value. */
export function keyValues(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    out[i < 0 ? kv : kv.slice(0, i)] = i < 0 ? '' : kv.slice(i + 1);
  }
  return out;
}
