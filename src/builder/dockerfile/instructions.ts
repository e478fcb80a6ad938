// The parser's nodes → the typed Dockerfile of `types.ts`, with Docker's argument rules and
// error texts (BuildKit's `frontend/dockerfile/instructions`). Words stay as written: the
// builder expands them (see expand.ts) because their values depend on build-time state.

import { parse, parseHeredocWord, type Node } from './parser.ts';
import { withSuggestion } from './suggest.ts';
import { expandWord, ExpansionError } from './expand.ts';
import {
  DockerfileError,
  type ArgDecl,
  type Command,
  type Dockerfile,
  type Heredoc,
  type Origin,
  type RunMount,
  type Stage,
} from './types.ts';

/** Parses a Dockerfile's text into stages and commands. The one entry point of the front end. */
export function parseDockerfile(text: string): Dockerfile {
  const parsed = parse(text);
  const metaArgs: Dockerfile['metaArgs'] = [];
  const stages: Stage[] = [];
  for (const node of parsed.nodes) {
    if (node.keyword === 'from') {
      stages.push(parseFrom(node, stages.length));
      continue;
    }
    const command = parseCommand(node, parsed.directives.escape);
    if (stages.length === 0) {
      if (command.kind !== 'ARG') throw new DockerfileError(node.line, 'no build stage in current context');
      const origin = originOf(node);
      for (const arg of command.args) metaArgs.push({ ...arg, origin });
      continue;
    }
    stages[stages.length - 1].commands.push(command);
  }
  return { directives: parsed.directives, metaArgs, stages };
}

/**
 * Parses ONBUILD triggers (an image's `OnBuild` list, each as `ONBUILD` stored it) into commands,
 * for the stage that builds FROM that image. The triggers are refused as Docker refuses them at
 * ONBUILD time (no FROM, MAINTAINER or ONBUILD).
 */
export function parseTriggers(triggers: string[], escape: '\\' | '`' = '\\'): Command[] {
  const prefix = escape === '`' ? '# escape=`\n' : '';
  const commands: Command[] = [];
  for (const trigger of triggers) {
    const parsed = parse(prefix + trigger + '\n');
    for (const node of parsed.nodes) {
      refuseAsTrigger(node.keyword.toUpperCase(), node.line);
      commands.push(parseCommand(node, escape));
    }
  }
  return commands;
}

/** The heredoc a COPY/ADD source word stands for (`<<EOF` → the EOF heredoc), if it is one. */
export function heredocForSource(source: string, heredocs: Heredoc[]): Heredoc | undefined {
  const word = parseHeredocWord(source);
  if (!word) return undefined;
  return heredocs.find((h) => h.name === word.name);
}

type RunCommand = Extract<Command, { kind: 'RUN' }>;

/** What a RUN runs once its heredocs are taken into account (BuildKit's dispatchRun rules). */
export interface RunInvocation {
  /** Shell form: one command line for the stage's SHELL; exec form: the argv. */
  shell: boolean;
  args: string[];
  /** A script to mount read-only (mode 0755) at `path` before running: a lone heredoc starting with `#!`. */
  script?: { path: string; content: string };
}

/**
 * Resolves a RUN's heredocs the way BuildKit does:
 *   - `RUN <<EOF` alone: the body is the shell command line, or, when it starts with `#!`, a
 *     script mounted at /dev/pipes/EOF and run by path (so its interpreter line is honoured);
 *   - anything else (`RUN python3 <<EOF`, several heredocs): the line and the bodies are joined
 *     back into one shell script (`line\nbody EOF`) and the shell handles the heredocs itself.
 * Heredoc bodies of RUN are never expanded by the builder; the shell does it.
 */
export function runInvocation(run: RunCommand): RunInvocation {
  if (run.heredocs.length === 0) return { shell: run.shell, args: run.args };
  if (!run.shell || run.args.length !== 1) {
    throw new DockerfileError(run.line, `parsing produced an invalid run command: ${JSON.stringify(run.args)}`);
  }
  const lone = parseHeredocWord(run.args[0]);
  if (lone) {
    const doc = run.heredocs[0];
    if (doc.content.startsWith('#!')) {
      const path = `/dev/pipes/${doc.name}`;
      return { shell: true, args: [path], script: { path, content: doc.content } };
    }
    return { shell: true, args: [doc.content] };
  }
  let script = run.args[0];
  for (const doc of run.heredocs) script += '\n' + doc.content + doc.name;
  return { shell: true, args: [script] };
}

function originOf(node: Node): Origin {
  return { line: node.line, endLine: node.endLine, original: node.original };
}

const STAGE_NAME_RE = /^[a-z][a-z0-9\-_.]*$/;

function parseFrom(node: Node, index: number): Stage {
  const args = splitWhitespace(node.rest);
  if (args.length !== 1 && args.length !== 3) throw new DockerfileError(node.line, 'FROM requires either one or three arguments');
  let name: string | undefined;
  if (args.length === 3) {
    if (args[1].toLowerCase() !== 'as') throw new DockerfileError(node.line, 'FROM requires either one or three arguments');
    name = args[2].toLowerCase();
    if (!STAGE_NAME_RE.test(name)) {
      throw new DockerfileError(node.line, `invalid name for build stage: "${args[2]}", name can't start with a number or contain symbols`);
    }
  }
  const flags = new Flags(node, { platform: 'string' }); // after the name, as BuildKit checks them
  const stage: Stage = { index, base: args[0], from: originOf(node), commands: [] };
  if (name !== undefined) stage.name = name;
  const platform = flags.string('platform');
  if (platform !== undefined) stage.platform = platform;
  return stage;
}

/** One instruction other than FROM. */
export function parseCommand(node: Node, escape: string = '\\'): Command {
  const origin = originOf(node);
  const line = node.line;
  const fail = (message: string): never => {
    throw new DockerfileError(line, message);
  };
  const NAME = node.keyword.toUpperCase();
  switch (node.keyword) {
    case 'run': {
      const flags = new Flags(node, { mount: 'strings', network: 'string', security: 'string' });
      const shell = node.json === undefined;
      const args = node.json ?? (node.rest === '' ? [] : [node.rest]);
      if (args.length === 0 && node.heredocs.length === 0) fail('RUN requires at least one argument');
      const command: Command = { kind: 'RUN', shell, args, heredocs: node.heredocs, mounts: flags.strings('mount').map((m) => parseMount(m, line)), ...origin };
      const network = flags.string('network');
      if (network !== undefined) {
        if (!['default', 'none', 'host'].includes(network)) fail(`invalid network mode "${network}"`);
        command.network = network;
      }
      const security = flags.string('security');
      if (security !== undefined) {
        if (!['sandbox', 'insecure'].includes(security)) fail(`security "${security}" is not valid`);
        command.security = security;
      }
      return command;
    }
    case 'cmd':
    case 'entrypoint': {
      new Flags(node, {});
      const kind = node.keyword === 'cmd' ? 'CMD' : 'ENTRYPOINT';
      // Shell form is always one string, maybe empty: Docker runs `CMD` alone as [shell..., ""].
      return { kind, shell: node.json === undefined, args: node.json ?? [node.rest], ...origin };
    }
    case 'shell': {
      new Flags(node, {});
      if (node.json === undefined) {
        if (node.rest === '') fail('SHELL requires at least one argument');
        fail('SHELL requires the arguments to be in JSON form');
      }
      if (node.json!.length === 0) fail('SHELL requires at least one argument');
      return { kind: 'SHELL', args: node.json!, ...origin };
    }
    case 'env':
    case 'label': {
      new Flags(node, {});
      const pairs = parseKeyValues(node, NAME, escape);
      return node.keyword === 'env' ? { kind: 'ENV', pairs, ...origin } : { kind: 'LABEL', pairs, ...origin };
    }
    case 'arg': {
      new Flags(node, {});
      const words = parseWords(node.rest, escape);
      if (words.length === 0) fail('ARG requires at least one argument');
      const args: ArgDecl[] = words.map((word) => {
        const eq = word.indexOf('=');
        if (eq < 0) return { name: word };
        if (eq === 0) fail('ARG names can not be blank');
        return { name: word.slice(0, eq), value: word.slice(eq + 1) };
      });
      return { kind: 'ARG', args, ...origin };
    }
    case 'workdir':
    case 'user':
    case 'stopsignal':
    case 'maintainer': {
      // BuildKit never checks STOPSIGNAL's flags (they are ignored); the others take none.
      if (node.keyword !== 'stopsignal') new Flags(node, {});
      if (node.rest === '') fail(`${NAME} requires exactly one argument`);
      const kind = NAME as 'WORKDIR' | 'USER' | 'STOPSIGNAL' | 'MAINTAINER';
      return { kind, value: node.rest, ...origin };
    }
    case 'expose': {
      new Flags(node, {});
      const ports = splitWhitespace(node.rest);
      if (ports.length === 0) fail('EXPOSE requires at least one argument');
      return { kind: 'EXPOSE', ports, ...origin };
    }
    case 'volume': {
      new Flags(node, {});
      const paths = node.json ?? splitWhitespace(node.rest);
      if (paths.length === 0) fail('VOLUME requires at least one argument');
      const trimmed = paths.map((p) => p.trim());
      if (trimmed.some((p) => p === '')) fail('VOLUME specified can not be an empty string');
      return { kind: 'VOLUME', paths: trimmed, ...origin };
    }
    case 'copy':
    case 'add':
      return parseCopy(node, origin, escape);
    case 'healthcheck':
      return parseHealthcheck(node, origin);
    case 'onbuild': {
      new Flags(node, {});
      if (!node.trigger) fail('ONBUILD requires at least one argument');
      // Only the trigger's keyword is checked now; as in Docker, the rest is checked when it runs.
      refuseAsTrigger(node.trigger!.keyword.toUpperCase(), line);
      let expression = node.original.replace(/^\s*ONBUILD\s*/i, '');
      for (const doc of node.heredocs) expression += '\n' + doc.content + doc.name;
      return { kind: 'ONBUILD', expression, ...origin };
    }
    case 'from':
      return fail('FROM cannot be used here');
    default:
      return fail(`unknown instruction: ${node.original.split(/\s/)[0]}`);
  }
}

function refuseAsTrigger(keyword: string, line: number): void {
  if (keyword === 'ONBUILD') throw new DockerfileError(line, 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
  if (keyword === 'FROM' || keyword === 'MAINTAINER') throw new DockerfileError(line, `${keyword} isn't allowed as an ONBUILD trigger`);
}

function parseCopy(node: Node, origin: Origin, escape: string): Command {
  const isCopy = node.keyword === 'copy';
  const NAME = isCopy ? 'COPY' : 'ADD';
  const spec: FlagSpec = isCopy
    ? { from: 'string', chown: 'string', chmod: 'string', link: 'bool', parents: 'bool', exclude: 'strings' }
    : { chown: 'string', chmod: 'string', link: 'bool', 'keep-git-dir': 'bool', checksum: 'string', exclude: 'strings', unpack: 'bool' };
  const flags = new Flags(node, spec);
  const args = node.json ?? splitWhitespace(node.rest);
  if (args.length < 2) {
    throw new DockerfileError(node.line, `${NAME} requires at least two arguments, but only one was provided. Destination could not be determined`);
  }
  const dest = args[args.length - 1];
  if (parseHeredocWord(dest)) throw new DockerfileError(node.line, `${NAME} cannot accept a heredoc as a destination`);
  const command: Command = {
    kind: isCopy ? 'COPY' : 'ADD',
    sources: args.slice(0, -1),
    dest,
    link: flags.bool('link') ?? false,
    exclude: flags.strings('exclude'),
    heredocs: node.heredocs,
    ...origin,
  };
  const from = flags.string('from');
  if (from !== undefined) {
    // A stage name must be known before the build starts, so BuildKit refuses anything the
    // shell lexer would change (a variable, quotes, escapes).
    let literal: string;
    try {
      literal = expandWord(from, () => undefined, escape);
    } catch (err) {
      if (err instanceof ExpansionError) throw new DockerfileError(node.line, err.message);
      throw err;
    }
    if (literal !== from) {
      throw new DockerfileError(node.line, 'variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround');
    }
    command.from = from;
  }
  const chown = flags.string('chown');
  if (chown !== undefined) command.chown = chown;
  const chmod = flags.string('chmod');
  if (chmod !== undefined) command.chmod = chmod;
  const checksum = flags.string('checksum');
  if (checksum !== undefined) command.checksum = checksum;
  const parents = flags.bool('parents');
  if (parents !== undefined) command.parents = parents;
  const keepGitDir = flags.bool('keep-git-dir');
  if (keepGitDir !== undefined) command.keepGitDir = keepGitDir;
  const unpack = flags.bool('unpack');
  if (unpack !== undefined) command.unpack = unpack;
  return command;
}

function parseHealthcheck(node: Node, origin: Origin): Command {
  const m = /^(\S+)\s*([\s\S]*)$/.exec(node.rest);
  if (!m) throw new DockerfileError(node.line, 'HEALTHCHECK requires at least one argument');
  const type = m[1].toUpperCase();
  const body = m[2];
  const base = { kind: 'HEALTHCHECK' as const, interval: 0, timeout: 0, startPeriod: 0, startInterval: 0, retries: 0, ...origin };
  if (type === 'NONE') {
    if (body !== '') throw new DockerfileError(node.line, 'HEALTHCHECK NONE takes no arguments');
    return { ...base, test: ['NONE'] };
  }
  const flags = new Flags(node, { interval: 'string', timeout: 'string', 'start-period': 'string', 'start-interval': 'string', retries: 'string' });
  if (type !== 'CMD') throw new DockerfileError(node.line, `Unknown type "${type}" in HEALTHCHECK (try CMD)`);
  const args = node.json ?? (body === '' ? [] : [body]);
  if (args.length === 0) throw new DockerfileError(node.line, 'Missing command after HEALTHCHECK CMD');
  const test = node.json ? ['CMD', ...args] : ['CMD-SHELL', ...args];
  const interval = (name: string) => {
    const value = flags.string(name);
    if (value === undefined || value === '') return 0;
    let ns: number;
    try {
      ns = parseGoDuration(value);
    } catch (err) {
      throw new DockerfileError(node.line, (err as Error).message);
    }
    if (ns === 0) return 0;
    if (ns < 1_000_000) throw new DockerfileError(node.line, `Interval "${name}" cannot be less than 1ms`);
    return ns;
  };
  let retries = 0;
  const r = flags.string('retries');
  if (r !== undefined && r !== '') {
    if (!/^[+-]?\d+$/.test(r) || Math.abs(Number(r)) > 2 ** 31 - 1) {
      throw new DockerfileError(node.line, `strconv.ParseInt: parsing "${r}": ${/^[+-]?\d+$/.test(r) ? 'value out of range' : 'invalid syntax'}`);
    }
    retries = Number(r);
    if (retries < 0) throw new DockerfileError(node.line, `--retries cannot be negative (${retries})`);
  }
  return {
    ...base,
    test,
    interval: interval('interval'),
    timeout: interval('timeout'),
    startPeriod: interval('start-period'),
    startInterval: interval('start-interval'),
    retries,
  };
}

const UNIT_NS: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/** Go's time.ParseDuration ("1h30m", "1.5s", "300ms"), in nanoseconds. */
export function parseGoDuration(text: string): number {
  const bad = () => new Error(`time: invalid duration "${text}"`);
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return 0;
  if (s === '') throw bad();
  let total = 0;
  while (s !== '') {
    const m = /^(\d*)(?:\.(\d*))?([a-zµμ]*)/.exec(s)!;
    if ((m[1] === '' && (m[2] ?? '') === '') || m[0] === '') throw bad();
    const unit = m[3];
    if (unit === '') throw new Error(`time: missing unit in duration "${text}"`);
    const factor = UNIT_NS[unit];
    if (factor === undefined) throw new Error(`time: unknown unit "${unit}" in duration "${text}"`);
    const whole = m[1] === '' ? 0 : Number(m[1]);
    const frac = m[2] ? Number('0.' + m[2]) : 0;
    total += whole * factor + Math.round(frac * factor);
    s = s.slice(m[0].length);
  }
  return sign * total;
}

/** ENV and LABEL: `KEY value…` (the old form, one pair) or `k=v k2="v 2"` (any number). */
function parseKeyValues(node: Node, NAME: string, escape: string): [string, string][] {
  const words = parseWords(node.rest, escape);
  if (words.length === 0) throw new DockerfileError(node.line, `${NAME} requires at least one argument`);
  if (!words[0].includes('=')) {
    const parts = splitWhitespace(node.rest, 2);
    if (parts.length < 2) throw new DockerfileError(node.line, `${NAME} must have two arguments`);
    return [[parts[0], parts[1]]];
  }
  return words.map((word): [string, string] => {
    const eq = word.indexOf('=');
    if (eq < 0) throw new DockerfileError(node.line, `Syntax error - can't find = in "${word}". Must be of the form: name=value`);
    if (eq === 0) throw new DockerfileError(node.line, `${NAME} names can not be blank`);
    return [word.slice(0, eq), word.slice(eq + 1)];
  });
}

/** Splits on blanks (BuildKit's `[\t\v\f\r ]+`), optionally into at most `limit` parts. */
function splitWhitespace(text: string, limit?: number): string[] {
  const t = text.trim();
  if (t === '') return [];
  const parts = t.split(/[\t\v\f\r\n ]+/);
  if (limit === undefined || parts.length <= limit) return parts;
  const m = /^(\S+)[\t\v\f\r\n ]+([\s\S]*)$/.exec(t)!;
  return [m[1], m[2]];
}

/**
 * Splits on unquoted blanks but keeps quotes and escapes in the words (BuildKit's parseWords for
 * ENV, LABEL and ARG): `a="x y" b=c` → [`a="x y"`, `b=c`]. Expansion removes them later.
 */
export function parseWords(text: string, escape: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let blankOk = false;
  let quote = '';
  const chars = Array.from(text);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (!inWord) {
      if (/\s/.test(ch)) continue;
      inWord = true;
    }
    if (quote === '') {
      if (/\s/.test(ch)) {
        if (blankOk || word.length) words.push(word);
        word = '';
        inWord = false;
        blankOk = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOk = true;
      }
      if (ch === escape) {
        if (i + 1 === chars.length) continue; // an escape at the end is dropped
        word += ch + chars[++i];
        continue;
      }
      word += ch;
    } else {
      if (ch === quote) quote = '';
      else if (ch === escape && quote !== "'") {
        if (i + 1 === chars.length) continue;
        word += ch + chars[++i];
        continue;
      }
      word += ch;
    }
  }
  if (inWord && (blankOk || word.length)) words.push(word);
  return words;
}

const MOUNT_TYPES = ['bind', 'cache', 'tmpfs', 'secret', 'ssh'];
const MOUNT_KEYS = ['type', 'from', 'source', 'target', 'readonly', 'id', 'sharing', 'required', 'size', 'mode', 'uid', 'gid', 'src', 'dst', 'destination', 'ro', 'rw', 'readwrite', 'env'];
/** Keys that may stand alone, meaning "true". */
const MOUNT_FLAGS = new Set(['readonly', 'ro', 'readwrite', 'rw', 'required']);

/**
 * `type=cache,target=/x,sharing=locked` → a RunMount: keys lower-cased, values as written (the
 * builder expands them), a bare key (`ro`, `required`) recorded as "true". Checked here as far as
 * BuildKit checks before expansion: the type, the key names, and no variable in `from`.
 */
function parseMount(spec: string, line: number): RunMount {
  const fail = (message: string): never => {
    throw new DockerfileError(line, message);
  };
  const options: Record<string, string> = {};
  let type = 'bind';
  for (const field of splitCsv(spec, line)) {
    const eq = field.indexOf('=');
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      if (!MOUNT_FLAGS.has(key)) fail(`invalid field '${field}' must be a key=value pair`);
      options[key] = 'true';
      continue;
    }
    const value = field.slice(eq + 1);
    if (!MOUNT_KEYS.includes(key)) fail(withSuggestion(`unexpected key '${key}' in '${field}'`, key, MOUNT_KEYS, true));
    if (key === 'type') {
      type = value.toLowerCase();
      if (!MOUNT_TYPES.includes(type)) fail(withSuggestion(`unsupported mount type "${value}"`, value, MOUNT_TYPES, true));
      continue;
    }
    if (key === 'from') {
      const dollar = value.indexOf('$');
      if (dollar !== -1 && dollar !== value.length - 1) fail(`'from' doesn't support variable expansion, define alias stage instead`);
    }
    options[key] = value;
  }
  return { type: type as RunMount['type'], options };
}

/** A RUN --mount with its values read: what BuildKit's mount parser makes of it after expansion. */
export interface ResolvedMount {
  type: RunMount['type'];
  /** A stage name or image to mount from (bind, cache). */
  from?: string;
  source?: string;
  target?: string;
  readonly: boolean;
  /** Secret or cache id. */
  id?: string;
  sharing?: 'shared' | 'private' | 'locked';
  /** Secret or ssh: fail when the client did not provide it. */
  required: boolean;
  /** tmpfs size in bytes. */
  sizeLimit?: number;
  /** Secret exposed as this environment variable. */
  env?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/**
 * Reads a RunMount's options (already expanded, see expandCommand) with BuildKit's rules and
 * errors: read-only by default except cache and tmpfs, `required` only for secret and ssh,
 * `size` only for tmpfs, `mode`/`uid`/`gid` only for secret, ssh and cache, and the secret
 * checks. Defaults that depend on the build (a cache id from the target, a secret's target under
 * /run/secrets) are left to the builder.
 */
export function resolveMount(mount: RunMount, line: number = 0): ResolvedMount {
  const fail = (message: string): never => {
    throw new DockerfileError(line, message);
  };
  const { type } = mount;
  const m: ResolvedMount = { type, readonly: !(type === 'cache' || type === 'tmpfs'), required: false };
  const bool = (key: string, value: string): boolean => {
    const b = parseGoBool(value);
    if (b === undefined) fail(`invalid value for ${key}: ${value}`);
    return b!;
  };
  const uint = (key: string, value: string, base: 8 | 10): number => {
    const ok = base === 8 ? /^[0-7]+$/.test(value) : /^\d+$/.test(value);
    const n = ok ? parseInt(value, base) : NaN;
    if (!ok || n > 0xffffffff) fail(`invalid value ${value} for ${key}`);
    return n;
  };
  for (const [key, value] of Object.entries(mount.options)) {
    switch (key) {
      case 'from':
        m.from = value;
        break;
      case 'source':
      case 'src':
        m.source = value;
        break;
      case 'target':
      case 'dst':
      case 'destination':
        m.target = value;
        break;
      case 'readonly':
      case 'ro':
        m.readonly = bool(key, value);
        break;
      case 'readwrite':
      case 'rw':
        m.readonly = !bool(key, value);
        break;
      case 'required':
        if (type !== 'secret' && type !== 'ssh') fail(`unexpected key '${key}' for mount type '${type}'`);
        m.required = bool(key, value);
        break;
      case 'size': {
        if (type !== 'tmpfs') fail(`unexpected key '${key}' for mount type '${type}'`);
        const size = parseRamBytes(value);
        if (size === undefined) fail(`invalid value for ${key}: ${value}`);
        m.sizeLimit = size;
        break;
      }
      case 'id':
        m.id = value;
        break;
      case 'sharing': {
        const v = value.toLowerCase();
        if (v !== 'shared' && v !== 'private' && v !== 'locked') fail(withSuggestion(`unsupported sharing value "${value}"`, value, ['shared', 'private', 'locked'], true));
        m.sharing = v as ResolvedMount['sharing'];
        break;
      }
      case 'mode':
        m.mode = uint(key, value, 8);
        break;
      case 'uid':
        m.uid = uint(key, value, 10);
        break;
      case 'gid':
        m.gid = uint(key, value, 10);
        break;
      case 'env':
        m.env = value;
        break;
      default:
        fail(withSuggestion(`unexpected key '${key}' in '${key}=${value}'`, key, MOUNT_KEYS, true));
    }
  }
  if (type !== 'secret' && type !== 'ssh' && type !== 'cache') {
    for (const key of ['mode', 'uid', 'gid'] as const) if (m[key] !== undefined) fail(`${key} not allowed for "${type}" type mounts`);
  }
  if (type === 'secret') {
    if (m.from) fail('secret mount should not have a from');
    if (m.sharing) fail('secret mount should not define sharing');
    if (!m.source && !m.target && !m.id) fail('invalid secret mount. one of source, target required');
    if (m.source && m.id) fail("both source and id can't be set");
  }
  if (m.sharing && type !== 'cache') fail(`invalid cache sharing set for ${type} mount`);
  return m;
}

/** Go's strconv.ParseBool. */
function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/** docker/go-units RAMInBytes: `64m`, `1.5g`, `512KiB`, `100` (binary multiples). */
function parseRamBytes(value: string): number | undefined {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(value);
  if (!m) return undefined;
  const n = parseFloat(m[1]);
  const power = m[2] ? 'kmgtp'.indexOf(m[2].toLowerCase()) + 1 : 0;
  return Math.trunc(n * 1024 ** power);
}

/** Comma-separated fields where a double-quoted field may hold commas (as Go's csv reader). */
function splitCsv(text: string, line: number): string[] {
  const fields: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      fields.push(field);
      field = '';
    } else field += ch;
  }
  if (quoted) throw new DockerfileError(line, `extraneous or missing " in quoted-field: ${text}`);
  fields.push(field);
  return fields;
}

type FlagType = 'string' | 'strings' | 'bool';
type FlagSpec = Record<string, FlagType>;

/** An instruction's `--flags`, checked against what the instruction accepts (BuildKit's BFlags). */
class Flags {
  #values = new Map<string, string | string[]>();

  constructor(node: Node, spec: FlagSpec) {
    const fail = (message: string): never => {
      throw new DockerfileError(node.line, message);
    };
    for (const raw of node.flags) {
      if (!raw.startsWith('--')) fail(`arg should start with -- : ${raw}`);
      const eq = raw.indexOf('=');
      const flag = eq < 0 ? raw : raw.slice(0, eq); // as written, with its dashes
      const name = flag.slice(2);
      const value = eq < 0 ? undefined : raw.slice(eq + 1);
      const type = Object.hasOwn(spec, name) ? spec[name] : undefined;
      if (!type) fail(withSuggestion(`unknown flag: ${flag}`, name, Object.keys(spec), true));
      if (this.#values.has(name) && type !== 'strings') fail(`duplicate flag specified: ${flag}`);
      if (type === 'bool') {
        if (value === '') fail(`missing a value on flag: ${flag}`);
        const lower = (value ?? 'true').toLowerCase();
        if (lower !== 'true' && lower !== 'false') fail(`expecting boolean value for flag ${flag}, not: ${value}`);
        this.#values.set(name, lower);
      } else {
        if (value === undefined) fail(`missing a value on flag: ${flag}`);
        if (type === 'string') this.#values.set(name, value!);
        else this.#values.set(name, [...((this.#values.get(name) as string[] | undefined) ?? []), value!]);
      }
    }
  }

  string(name: string): string | undefined {
    return this.#values.get(name) as string | undefined;
  }

  strings(name: string): string[] {
    return (this.#values.get(name) as string[] | undefined) ?? [];
  }

  bool(name: string): boolean | undefined {
    const v = this.#values.get(name);
    return v === undefined ? undefined : v === 'true';
  }
}
