import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ApiError } from '../../api-client/client.ts';
import { Deframer } from '../../common/stdcopy.ts';
import { humanDuration, humanSize, parseBytes } from '../../common/units.ts';
import { type Command, type CommandContext, CliError, UsageError, filtersParam, flags, requireArgs, splitAtFirstPositional } from '../command.ts';
import { createWithPull } from './pull-push.ts';
import type { Socket } from 'node:net';
import { type Session, openSession } from '../session.ts';
import { type ListPort, displayablePorts, isIP, joinHostPort, naturalLess, parseExpose, parsePublishList } from '../ports.ts';

const short = (id: string) => id.slice(0, 12);

/** The options `create` and `run` share, with docker's names. */
const CREATE_OPTIONS = {
  name: { type: 'string' }, env: { type: 'string', short: 'e', multiple: true }, 'env-file': { type: 'string', multiple: true },
  workdir: { type: 'string', short: 'w' }, user: { type: 'string', short: 'u' }, entrypoint: { type: 'string' },
  hostname: { type: 'string', short: 'h' }, label: { type: 'string', short: 'l', multiple: true }, interactive: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' }, volume: { type: 'string', short: 'v', multiple: true }, mount: { type: 'string', multiple: true },
  tmpfs: { type: 'string', multiple: true }, 'volumes-from': { type: 'string', multiple: true }, 'read-only': { type: 'boolean' }, memory: { type: 'string', short: 'm' },
  'memory-swap': { type: 'string' }, 'memory-reservation': { type: 'string' }, cpus: { type: 'string' }, 'cpu-shares': { type: 'string', short: 'c' },
  'cpuset-cpus': { type: 'string' }, 'cpuset-mems': { type: 'string' }, 'pids-limit': { type: 'string' }, ulimit: { type: 'string', multiple: true },
  init: { type: 'boolean' }, restart: { type: 'string' }, 'stop-signal': { type: 'string' }, 'stop-timeout': { type: 'string' },
  'cap-add': { type: 'string', multiple: true }, 'cap-drop': { type: 'string', multiple: true }, privileged: { type: 'boolean' },
  'security-opt': { type: 'string', multiple: true }, platform: { type: 'string' }, pull: { type: 'string' },
  'health-cmd': { type: 'string' }, 'health-interval': { type: 'string' }, 'health-timeout': { type: 'string' }, 'health-retries': { type: 'string' },
  'health-start-period': { type: 'string' }, 'no-healthcheck': { type: 'boolean' }, network: { type: 'string', multiple: true }, publish: { type: 'string', short: 'p', multiple: true },
  'publish-all': { type: 'boolean', short: 'P' }, 'shm-size': { type: 'string' }, sysctl: { type: 'string', multiple: true }, 'oom-score-adj': { type: 'string' },
  'add-host': { type: 'string', multiple: true }, dns: { type: 'string', multiple: true }, 'dns-search': { type: 'string', multiple: true },
  ip: { type: 'string' }, ip6: { type: 'string' }, 'network-alias': { type: 'string', multiple: true }, expose: { type: 'string', multiple: true },
  'log-driver': { type: 'string' }, 'log-opt': { type: 'string', multiple: true },
} as const;

const RUN_OPTIONS = { ...CREATE_OPTIONS, detach: { type: 'boolean', short: 'd' }, rm: { type: 'boolean' }, 'detach-keys': { type: 'string' } } as const;

/** Go durations (`30s`, `1m30s`) in nanoseconds, for health checks. */
function durationNs(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  const unit: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 6e10, h: 3.6e12 };
  let i = 0;
  let total = 0;
  while (i < v.length) {
    re.lastIndex = i;
    const m = re.exec(v);
    if (!m) throw new UsageError(`invalid argument "${v}" for "--${flag}" flag: time: invalid duration "${v}"`, 125);
    total += Number(m[1]) * unit[m[2]];
    i = re.lastIndex;
  }
  return Math.round(total);
}

function bytesFlag(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (v === '-1') return -1;
  const n = parseBytes(v);
  if (n === undefined) throw new UsageError(`invalid argument "${v}" for "${flag.startsWith('-') ? flag : `--${flag}`}" flag: invalid size: '${v}'`, 125);
  return n;
}

function intFlag(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) throw new UsageError(`invalid argument "${v}" for "--${flag}" flag: strconv.ParseInt: parsing "${v}": invalid syntax`, 125);
  return Number(v);
}

type CreateValues = { [K in keyof typeof CREATE_OPTIONS]?: (typeof CREATE_OPTIONS)[K] extends { multiple: true } ? string[] : (typeof CREATE_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string };

/** docker's create flags as the Engine API's create body. */
export function createBody(v: CreateValues, image: string, command: string[]): Record<string, unknown> {
  const env: string[] = [];
  for (const f of v['env-file'] ?? []) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const l = line.trim();
      if (!l || l.startsWith('#')) continue;
      env.push(l.includes('=') ? l : `${l}=${process.env[l] ?? ''}`);
    }
  }
  for (const e of v.env ?? []) {
    if (e.includes('=')) env.push(e);
    else if (process.env[e] !== undefined) env.push(`${e}=${process.env[e]}`);
  }
  const labels: Record<string, string> = {};
  for (const l of v.label ?? []) {
    const i = l.indexOf('=');
    labels[i < 0 ? l : l.slice(0, i)] = i < 0 ? '' : l.slice(i + 1);
  }
  let restart = { Name: 'no', MaximumRetryCount: 0 };
  if (v.restart) {
    const [name, count] = v.restart.split(':');
    if (!['no', 'always', 'on-failure', 'unless-stopped'].includes(name)) throw new UsageError(`invalid restart policy format: ${v.restart}`, 125);
    restart = { Name: name, MaximumRetryCount: count ? Number(count) : 0 };
  }
  const ulimits = (v.ulimit ?? []).map((u) => {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
    if (!m) throw new UsageError(`invalid argument "${u}" for "--ulimit" flag: invalid ulimit argument: ${u}`, 125);
    return { Name: m[1], Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
  });
  const tmpfs: Record<string, string> = {};
  for (const t of v.tmpfs ?? []) {
    const i = t.indexOf(':');
    tmpfs[i < 0 ? t : t.slice(0, i)] = i < 0 ? '' : t.slice(i + 1);
  }
  let healthcheck: Record<string, unknown> | undefined;
  if (v['no-healthcheck']) healthcheck = { Test: ['NONE'] };
  else if (v['health-cmd'] || v['health-interval'] || v['health-timeout'] || v['health-retries'] || v['health-start-period']) {
    healthcheck = {
      Test: v['health-cmd'] ? ['CMD-SHELL', v['health-cmd']] : undefined, Interval: durationNs(v['health-interval'], 'health-interval'),
      Timeout: durationNs(v['health-timeout'], 'health-timeout'), StartPeriod: durationNs(v['health-start-period'], 'health-start-period'),
      Retries: intFlag(v['health-retries'], 'health-retries'),
    };
  }
  const cpus = v.cpus === undefined ? undefined : Number(v.cpus);
  if (cpus !== undefined && !(cpus >= 0)) throw new UsageError(`invalid argument "${v.cpus}" for "--cpus" flag: failed to parse ${v.cpus} as a rational number`, 125);
  // As docker: every published port is exposed too, and --expose takes ranges.
  let published;
  try {
    published = parsePublishList(v.publish ?? []);
    for (const e of v.expose ?? []) for (const p of parseExpose(e)) published.exposed[p] = {};
  } catch (e) {
    throw new UsageError((e as Error).message, 125);
  }
  const { exposed, bindings: ports } = published;
  const net = networking(v);
  return {
    Image: image, Cmd: command.length ? command : undefined, Entrypoint: v.entrypoint === undefined ? undefined : [v.entrypoint],
    Env: env, WorkingDir: v.workdir ?? '', User: v.user ?? '', Hostname: v.hostname ?? '', Labels: labels,
    Tty: Boolean(v.tty), OpenStdin: Boolean(v.interactive), StdinOnce: false, AttachStdin: Boolean(v.interactive), AttachStdout: true, AttachStderr: true,
    StopSignal: v['stop-signal'], StopTimeout: intFlag(v['stop-timeout'], 'stop-timeout'), Healthcheck: healthcheck,
    ExposedPorts: Object.keys(exposed).length ? exposed : undefined,
    // As docker does: `-v /path` (no source) is an anonymous volume in Config.Volumes, the rest are Binds.
    Volumes: anonymousVolumes(v.volume),
    HostConfig: {
      Binds: namedBinds(v.volume), VolumesFrom: v['volumes-from'] ?? null, Mounts: (v.mount ?? []).map(parseMount), Tmpfs: Object.keys(tmpfs).length ? tmpfs : undefined,
      ReadonlyRootfs: Boolean(v['read-only']), Memory: bytesFlag(v.memory, '-m, --memory') ?? 0, MemorySwap: bytesFlag(v['memory-swap'], 'memory-swap') ?? 0,
      MemoryReservation: bytesFlag(v['memory-reservation'], 'memory-reservation') ?? 0, NanoCpus: cpus === undefined ? 0 : Math.round(cpus * 1e9),
      CpuShares: intFlag(v['cpu-shares'], 'cpu-shares') ?? 0, CpusetCpus: v['cpuset-cpus'] ?? '', CpusetMems: v['cpuset-mems'] ?? '',
      PidsLimit: intFlag(v['pids-limit'], 'pids-limit') ?? null, Ulimits: ulimits.length ? ulimits : null, Init: v.init ?? null,
      RestartPolicy: restart, CapAdd: v['cap-add'] ?? null, CapDrop: v['cap-drop'] ?? null, Privileged: Boolean(v.privileged),
      SecurityOpt: v['security-opt'] ?? null, NetworkMode: net.mode, PortBindings: ports, PublishAllPorts: Boolean(v['publish-all']),
      ShmSize: bytesFlag(v['shm-size'], 'shm-size'), Sysctls: Object.fromEntries((v.sysctl ?? []).map((s) => s.split('=') as [string, string])),
      OomScoreAdj: intFlag(v['oom-score-adj'], 'oom-score-adj') ?? 0, ExtraHosts: v['add-host'] ?? null, Dns: v.dns ?? [], DnsSearch: v['dns-search'] ?? [],
      LogConfig: logConfig(v['log-driver'], v['log-opt']),
    },
    NetworkingConfig: net.endpoints ? { EndpointsConfig: net.endpoints } : undefined,
  };
}

/** docker's NetworkMode.IsUserDefined: not default, bridge, host, none or container:<id>. */
function userDefinedNetwork(name: string): boolean {
  return !['default', 'bridge', 'host', 'none'].includes(name) && !name.startsWith('container:');
}

/** `--ip`/`--ip6` as pflag's IP flags check them. */
function ipFlag(value: string | undefined, flag: string): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!isIP(value.trim())) throw new UsageError(`invalid argument "${value}" for "--${flag}" flag: invalid string being converted to IP address: ${value}`, 125);
  return value.trim();
}

/**
 * `--network`, `--ip`, `--ip6` and `--network-alias` as docker's parseNetworkOpts reads them:
 * NetworkMode is the first network; --ip, --ip6 and --network-alias configure that first
 * endpoint. A lone network with no endpoint options sends no NetworkingConfig.
 */
function networking(v: CreateValues): { mode: string; endpoints?: Record<string, Record<string, unknown>> } {
  const nets = v.network ?? [];
  const targets = nets.length ? nets : ['default'];
  const aliases = v['network-alias'] ?? [];
  const ip4 = ipFlag(v.ip, 'ip');
  const ip6 = ipFlag(v.ip6, 'ip6');
  const endpoints: Record<string, Record<string, unknown>> = {};
  let userDefined = false, builtin = false;
  targets.forEach((target, i) => {
    if (target.trim() === '') throw new UsageError('no name set for network', 125);
    if (userDefinedNetwork(target)) userDefined = true;
    else builtin = true;
    const ep: Record<string, unknown> = {};
    if (i === 0 && aliases.length) {
      if (!userDefinedNetwork(target)) throw new UsageError('network-scoped aliases are only supported for user-defined networks', 125);
      ep.Aliases = [...aliases];
    }
    if (i === 0 && (ip4 || ip6)) ep.IPAMConfig = { ...(ip4 && { IPv4Address: ip4 }), ...(ip6 && { IPv6Address: ip6 }) };
    if (endpoints[target]) throw new UsageError(`network "${target}" is specified multiple times`, 125);
    if (targets.length === 1 && Object.keys(ep).length === 0) return;
    endpoints[target] = ep;
  });
  if (userDefined && builtin) throw new UsageError('conflicting options: cannot attach both user-defined and non-user-defined network-modes', 125);
  return { mode: nets[0] ?? 'default', endpoints: Object.keys(endpoints).length ? endpoints : undefined };
}

/** `--log-driver` and `--log-opt k=v`: json-file is the one driver, with max-size and max-file. */
function logConfig(driver: string | undefined, opts: string[] | undefined): { Type: string; Config: Record<string, string> } {
  if (driver && driver !== 'json-file') throw new UsageError(`berth: Error response from daemon: logging driver "${driver}" is not supported: only json-file`, 125);
  const config: Record<string, string> = {};
  for (const o of opts ?? []) {
    const i = o.indexOf('=');
    if (i <= 0) throw new UsageError(`invalid argument "${o}" for "--log-opt" flag: invalid key value pair format: ${o}`, 125);
    config[o.slice(0, i)] = o.slice(i + 1);
  }
  return { Type: 'json-file', Config: config };
}

/** `-v` values with a source (named volumes and host paths; a relative `./dir` made absolute), as HostConfig.Binds. */
function namedBinds(list: string[] | undefined): string[] | null {
  const out = (list ?? []).filter((b) => b.includes(':')).map((b) => (b.startsWith('.') ? `${resolve(b.slice(0, b.indexOf(':')))}${b.slice(b.indexOf(':'))}` : b));
  return out.length ? out : null;
}

/** `-v /path` values: anonymous volumes, as Config.Volumes. */
function anonymousVolumes(list: string[] | undefined): Record<string, object> | undefined {
  const out = (list ?? []).filter((b) => !b.includes(':'));
  return out.length ? Object.fromEntries(out.map((b) => [b, {}])) : undefined;
}

function parseMount(spec: string): Record<string, unknown> {
  const m: Record<string, unknown> = { Type: 'volume' };
  for (const part of spec.split(',')) {
    const [k, val] = part.split('=');
    switch (k) {
      case 'type': m.Type = val; break;
      case 'source': case 'src': m.Source = val; break;
      case 'target': case 'destination': case 'dst': m.Target = val; break;
      case 'readonly': case 'ro': m.ReadOnly = val === undefined || val === 'true' || val === '1'; break;
      case 'tmpfs-size': m.TmpfsOptions = { ...(m.TmpfsOptions as object), SizeBytes: parseBytes(val) }; break;
      case 'bind-propagation': m.BindOptions = { ...(m.BindOptions as object), Propagation: val }; break;
      case 'bind-create-mountpoint': m.BindOptions = { ...(m.BindOptions as object), CreateMountpoint: val === undefined || val === 'true' || val === '1' }; break;
      case 'volume-nocopy': m.VolumeOptions = { ...(m.VolumeOptions as object), NoCopy: val === undefined || val === 'true' || val === '1' }; break;
      case 'volume-driver': case 'volume-opt': case 'volume-label': {
        const vo = (m.VolumeOptions ??= {}) as { DriverConfig?: { Name?: string; Options?: Record<string, string> }; Labels?: Record<string, string> };
        const rest = part.slice(k.length + 1);
        const i = rest.indexOf('=');
        if (k === 'volume-driver') vo.DriverConfig = { ...vo.DriverConfig, Name: val };
        else if (i <= 0) throw new UsageError(`invalid argument "${spec}" for "--mount" flag: invalid value for ${k}: ${rest}`, 125);
        else if (k === 'volume-opt') vo.DriverConfig = { ...vo.DriverConfig, Options: { ...vo.DriverConfig?.Options, [rest.slice(0, i)]: rest.slice(i + 1) } };
        else vo.Labels = { ...vo.Labels, [rest.slice(0, i)]: rest.slice(i + 1) };
        break;
      }
      default: throw new UsageError(`invalid argument "${spec}" for "--mount" flag: unexpected key '${k}' in '${part}'`, 125);
    }
  }
  if (!m.Target) throw new UsageError(`invalid argument "${spec}" for "--mount" flag: target is required`, 125);
  return m;
}

/** Docker's exit code for a container that could not start. */
function startFailureCode(message: string): number {
  if (/executable file not found|no such file or directory|not found/i.test(message)) return 127;
  if (/permission denied|cannot execute|is a directory/i.test(message)) return 126;
  return 125;
}

async function createContainer(ctx: CommandContext, values: CreateValues, image: string, command: string[]): Promise<string> {
  const body = createBody(values, image, command);
  try {
    const res = await createWithPull(ctx, image, values, () => ctx.client().json<{ Id: string }>('POST', '/containers/create', { query: { name: values.name, platform: values.platform }, body }));
    return res.Id;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404 && /No such image/.test(e.message) && values.pull !== 'never') {
      ctx.io.err(`Unable to find image '${e.message.replace(/^No such image: /, '')}' locally\n`);
    }
    throw e;
  }
}

export const run: Command = {
  usage: `Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]

Create and run a new container from an image

Options:
  -d, --detach            Run container in background and print container ID
  -e, --env list          Set environment variables
  -i, --interactive       Keep STDIN open even if not attached
      --name string       Assign a name to the container
      --rm                Automatically remove the container and its associated anonymous volumes when it exits
  -t, --tty               Allocate a pseudo-TTY
  (and docker's other create options)
`,
  description: 'Create and run a new container from an image',
  async run(ctx) {
    const split = splitAtFirstPositional(ctx.args, RUN_OPTIONS);
    const { values } = flags({ ...ctx, args: split.flags }, RUN_OPTIONS, this.usage);
    if (split.rest.length === 0) throw new UsageError(`"berth run" requires at least 1 argument.\nSee 'berth run --help'.\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\nCreate and run a new container from an image`, 125);
    const [image, ...command] = split.rest;
    const detach = Boolean(values.detach);
    // As docker: -it needs a terminal on stdin (a pipe would never end a TTY's input).
    if (!detach && values.tty && values.interactive && !process.stdin.isTTY) throw new CliError('the input device is not a TTY', 1);
    if (detach && values.rm === undefined) { /* docker allows -d --rm together */ }
    const v = values as CreateValues & { rm?: boolean };
    const body = createBody(v, image, command);
    (body.HostConfig as Record<string, unknown>).AutoRemove = Boolean(values.rm);
    if (!detach && values.interactive) body.StdinOnce = true;
    let id: string;
    try {
      const created = await createWithPull(ctx, image, values, () => ctx.client().json<{ Id: string; Warnings: string[] | null }>('POST', '/containers/create', { query: { name: values.name, platform: values.platform }, body }));
      id = created.Id;
      for (const w of created.Warnings ?? []) ctx.io.err(`WARNING: ${w}\n`);
    } catch (e) {
      if (e instanceof ApiError) {
        if (e.status === 404 && /No such image/.test(e.message) && values.pull !== 'never') ctx.io.err(`Unable to find image '${e.message.replace(/^No such image: /, '')}' locally\n`);
        throw new CliError(`berth: Error response from daemon: ${e.message}\n\nRun 'berth run --help' for more information`, 125);
      }
      throw e;
    }
    const client = ctx.client();
    if (detach) {
      await start(ctx, id, 'run');
      ctx.io.out(`${id}\n`);
      return 0;
    }
    const tty = Boolean(values.tty);
    const stream = await client.upgrade('POST', `/containers/${id}/attach`, { query: { stream: true, stdin: Boolean(values.interactive), stdout: true, stderr: true } });
    const waitRes = client.json<{ StatusCode: number; Error: { Message: string } | null }>('POST', `/containers/${id}/wait`, { query: { condition: values.rm ? 'removed' : 'next-exit' } });
    waitRes.catch(() => {});
    // Raw terminal, resize at start and on SIGWINCH, detach keys: see cli/session.ts.
    const session = openSession({
      stream, tty, stdin: Boolean(values.interactive), detachKeys: values['detach-keys'],
      resize: (h, w) => client.request('POST', `/containers/${id}/resize`, { query: { h, w } }).then((r) => void r.resume()),
    });
    return startAttached(ctx, id, 'run', session, stream, waitRes);
  },
};

/** Starts a container a session is already attached to and follows it: its exit code, or 0 if the user detached. */
async function startAttached(ctx: CommandContext, id: string, verb: string, session: Session, stream: Socket, waitRes: Promise<{ StatusCode: number }>): Promise<number> {
  try {
    await start(ctx, id, verb);
    session.startResizing();
    if ((await session.done) === 'detached') return 0;
    return (await waitRes).StatusCode;
  } finally {
    session.restore();
    stream.destroy();
  }
}

async function start(ctx: CommandContext, id: string, verb: string): Promise<void> {
  try {
    await ctx.client().request('POST', `/containers/${id}/start`).then((r) => r.resume());
  } catch (e) {
    if (e instanceof ApiError) {
      throw new CliError(`berth: Error response from daemon: ${e.message}\n\nRun 'berth ${verb} --help' for more information`, startFailureCode(e.message));
    }
    throw e;
  }
}

export const create: Command = {
  usage: `Usage:  berth create [OPTIONS] IMAGE [COMMAND] [ARG...]

Create a new container
`,
  description: 'Create a new container',
  async run(ctx) {
    const split = splitAtFirstPositional(ctx.args, CREATE_OPTIONS);
    const { values } = flags({ ...ctx, args: split.flags }, CREATE_OPTIONS, this.usage);
    if (split.rest.length === 0) throw new UsageError(`"berth create" requires at least 1 argument.\nSee 'berth create --help'.`, 125);
    const [image, ...command] = split.rest;
    try {
      ctx.io.out(`${await createContainer(ctx, values as CreateValues, image, command)}\n`);
    } catch (e) {
      if (e instanceof ApiError) throw new CliError(`Error response from daemon: ${e.message}`, 125);
      throw e;
    }
  },
};

/** Runs a per-container call for each name, printing the name on success, as docker's stop/kill/rm do. */
async function eachContainer(ctx: CommandContext, names: string[], call: (name: string) => Promise<void>, print = true): Promise<number> {
  let failed = false;
  for (const n of names) {
    try {
      await call(n);
      if (print) ctx.io.out(`${n}\n`);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      ctx.io.err(`Error response from daemon: ${e.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

const simple = (verb: string, method: string, path: (n: string) => string, query: (v: Record<string, unknown>) => Record<string, string | number | boolean | undefined>, options: Record<string, { type: 'string' | 'boolean'; short?: string }>, usage: string): Command => ({
  usage, description: usage.split('\n')[2] ?? verb,
  async run(ctx) {
    const { values, positionals } = flags(ctx, options, usage);
    requireArgs(ctx, positionals, 1, Infinity, usage);
    return eachContainer(ctx, positionals, async (n) => {
      const r = await ctx.client().request(method, path(n), { query: query(values as Record<string, unknown>) });
      r.resume();
    });
  },
});

export const startCmd: Command = {
  usage: `Usage:  berth start [OPTIONS] CONTAINER [CONTAINER...]

Start one or more stopped containers

Options:
  -a, --attach        Attach STDOUT/STDERR and forward signals
  -i, --interactive   Attach container's STDIN
`,
  description: 'Start one or more stopped containers',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { attach: { type: 'boolean', short: 'a' }, interactive: { type: 'boolean', short: 'i' }, 'detach-keys': { type: 'string' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    if (values.attach) {
      if (positionals.length > 1) throw new CliError('you cannot start and attach multiple containers at once');
      const c = await ctx.client().json<{ Id: string; Config: { Tty: boolean } }>('GET', `/containers/${encodeURIComponent(positionals[0])}/json`);
      if (values.interactive && c.Config.Tty && !process.stdin.isTTY) throw new CliError('the input device is not a TTY', 1);
      const stream = await ctx.client().upgrade('POST', `/containers/${c.Id}/attach`, { query: { stream: true, stdin: Boolean(values.interactive), stdout: true, stderr: true } });
      const waitRes = ctx.client().json<{ StatusCode: number }>('POST', `/containers/${c.Id}/wait`, { query: { condition: 'next-exit' } });
      waitRes.catch(() => {});
      const session = openSession({
        stream, tty: c.Config.Tty, stdin: Boolean(values.interactive), detachKeys: values['detach-keys'],
        resize: (h, w) => ctx.client().request('POST', `/containers/${c.Id}/resize`, { query: { h, w } }).then((r) => void r.resume()),
      });
      return startAttached(ctx, c.Id, 'start', session, stream, waitRes);
    }
    return eachContainer(ctx, positionals, (n) => ctx.client().request('POST', `/containers/${encodeURIComponent(n)}/start`).then((r) => void r.resume()));
  },
};

export const stop = simple('stop', 'POST', (n) => `/containers/${encodeURIComponent(n)}/stop`, (v) => ({ t: v.time as string | undefined, signal: v.signal as string | undefined }),
  { time: { type: 'string', short: 't' }, signal: { type: 'string', short: 's' } }, `Usage:  berth stop [OPTIONS] CONTAINER [CONTAINER...]

Stop one or more running containers

Options:
  -s, --signal string   Signal to send to the container
  -t, --time int        Seconds to wait before killing the container
`);

export const restart = simple('restart', 'POST', (n) => `/containers/${encodeURIComponent(n)}/restart`, (v) => ({ t: v.time as string | undefined, signal: v.signal as string | undefined }),
  { time: { type: 'string', short: 't' }, signal: { type: 'string', short: 's' } }, `Usage:  berth restart [OPTIONS] CONTAINER [CONTAINER...]

Restart one or more containers
`);

export const kill = simple('kill', 'POST', (n) => `/containers/${encodeURIComponent(n)}/kill`, (v) => ({ signal: v.signal as string | undefined }),
  { signal: { type: 'string', short: 's' } }, `Usage:  berth kill [OPTIONS] CONTAINER [CONTAINER...]

Kill one or more running containers

Options:
  -s, --signal string   Signal to send to the container
`);

export const pause = simple('pause', 'POST', (n) => `/containers/${encodeURIComponent(n)}/pause`, () => ({}), {}, `Usage:  berth pause CONTAINER [CONTAINER...]

Pause all processes within one or more containers
`);

export const unpause = simple('unpause', 'POST', (n) => `/containers/${encodeURIComponent(n)}/unpause`, () => ({}), {}, `Usage:  berth unpause CONTAINER [CONTAINER...]

Unpause all processes within one or more containers
`);

export const rm = simple('rm', 'DELETE', (n) => `/containers/${encodeURIComponent(n)}`, (v) => ({ force: v.force as boolean | undefined, v: v.volumes as boolean | undefined }),
  { force: { type: 'boolean', short: 'f' }, volumes: { type: 'boolean', short: 'v' }, link: { type: 'boolean', short: 'l' } }, `Usage:  berth rm [OPTIONS] CONTAINER [CONTAINER...]

Remove one or more containers

Options:
  -f, --force     Force the removal of a running container (uses SIGKILL)
  -v, --volumes   Remove anonymous volumes associated with the container
`);

export const wait: Command = {
  usage: `Usage:  berth wait CONTAINER [CONTAINER...]

Block until one or more containers stop, then print their exit codes
`,
  description: 'Block until one or more containers stop, then print their exit codes',
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    return eachContainer(ctx, positionals, async (n) => {
      const r = await ctx.client().json<{ StatusCode: number }>('POST', `/containers/${encodeURIComponent(n)}/wait`);
      ctx.io.out(`${r.StatusCode}\n`);
    }, false);
  },
};

export const rename: Command = {
  usage: `Usage:  berth rename CONTAINER NEW_NAME

Rename a container
`,
  description: 'Rename a container',
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 2, 2, this.usage);
    await ctx.client().request('POST', `/containers/${encodeURIComponent(positionals[0])}/rename`, { query: { name: positionals[1] } }).then((r) => r.resume());
  },
};

export const logs: Command = {
  usage: `Usage:  berth logs [OPTIONS] CONTAINER

Fetch the logs of a container

Options:
  -f, --follow         Follow log output
      --since string   Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
  -n, --tail string    Number of lines to show from the end of the logs (default "all")
  -t, --timestamps     Show timestamps
      --until string   Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)
`,
  description: 'Fetch the logs of a container',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      follow: { type: 'boolean', short: 'f' }, since: { type: 'string' }, tail: { type: 'string', short: 'n' }, timestamps: { type: 'boolean', short: 't' },
      until: { type: 'string' }, details: { type: 'boolean' },
    }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const c = await ctx.client().json<{ Id: string; Config: { Tty: boolean } }>('GET', `/containers/${encodeURIComponent(positionals[0])}/json`);
    const res = await ctx.client().request('GET', `/containers/${c.Id}/logs`, {
      query: { stdout: true, stderr: true, follow: values.follow, tail: values.tail, timestamps: values.timestamps, since: values.since && timeArg(values.since), until: values.until && timeArg(values.until) },
    });
    const deframer = new Deframer();
    for await (const chunk of res) {
      if (c.Config.Tty) process.stdout.write(chunk as Buffer);
      else for (const { stream, payload } of deframer.push(chunk as Buffer)) (stream === 2 ? process.stderr : process.stdout).write(payload);
    }
  },
};

/** docker's --since/--until: unix seconds, RFC 3339, or a duration back from now. */
function timeArg(v: string): string {
  if (/^\d+(\.\d+)?$/.test(v)) return v;
  const d = durationNs(v, 'since');
  if (d !== undefined && /[a-z]$/.test(v)) return ((Date.now() * 1e6 - d) / 1e9).toFixed(9);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CliError(`invalid value for "since": ${v}`);
  return (t / 1000).toFixed(9);
}

export const ps: Command = {
  usage: `Usage:  berth ps [OPTIONS]

List containers

Options:
  -a, --all             Show all containers (default shows just running)
  -f, --filter filter   Filter output based on conditions provided
      --format string   Format output using a custom template
  -n, --last int        Show n last created containers (includes all states) (default -1)
  -l, --latest          Show the latest created container (includes all states)
      --no-trunc        Don't truncate output
  -q, --quiet           Only display container IDs
  -s, --size            Display total file sizes
`,
  description: 'List containers',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      all: { type: 'boolean', short: 'a' }, filter: { type: 'string', short: 'f', multiple: true }, format: { type: 'string' }, last: { type: 'string', short: 'n' },
      latest: { type: 'boolean', short: 'l' }, 'no-trunc': { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' }, size: { type: 'boolean', short: 's' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const limit = values.latest ? 1 : values.last ? Number(values.last) : undefined;
    const list = await ctx.client().json<{ Id: string; Names: string[]; Image: string; Command: string; Created: number; Status: string; State: string; Ports: ListPort[] | null; Labels: Record<string, string>; Mounts?: { Name?: string; Source: string }[]; NetworkSettings?: { Networks?: Record<string, unknown> | null } | null; SizeRw?: number; SizeRootFs?: number }[]>(
      'GET', '/containers/json', { query: { all: values.all, limit, filters: filtersParam(values.filter), size: values.size } });
    const trunc = !values['no-trunc'];
    const now = Date.now();
    const rows = list.map((c) => ({
      ID: trunc ? short(c.Id) : c.Id,
      Image: c.Image,
      Command: trunc ? JSON.stringify(c.Command.length > 20 ? `${c.Command.slice(0, 19)}…` : c.Command) : JSON.stringify(c.Command),
      CreatedAt: new Date(c.Created * 1000).toISOString(),
      RunningFor: `${humanDuration(now - c.Created * 1000)} ago`,
      Ports: displayablePorts(c.Ports ?? []),
      State: c.State,
      Status: c.Status,
      Size: c.SizeRw === undefined ? '' : `${humanSize(c.SizeRw)} (virtual ${humanSize(c.SizeRootFs ?? 0)})`,
      Names: c.Names.map((n) => n.replace(/^\//, '')).join(','),
      Labels: Object.entries(c.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
      Mounts: (c.Mounts ?? []).map((m) => m.Name || m.Source).map((n) => (trunc && [...n].length > 15 ? `${[...n].slice(0, 14).join('')}…` : n)).join(','),
      Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).sort().join(','),
    }));
    const format = values.quiet ? '{{.ID}}' : values.format && values.format !== 'table' ? values.format
      : `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}${values.size ? '\t{{.Size}}' : ''}`;
    ctx.io.out((await import('../format/table.ts')).formatItems(format, rows, {
      ID: 'CONTAINER ID', Image: 'IMAGE', Command: 'COMMAND', CreatedAt: 'CREATED AT', RunningFor: 'CREATED', Ports: 'PORTS', State: 'STATE',
      Status: 'STATUS', Size: 'SIZE', Names: 'NAMES', Labels: 'LABELS', Mounts: 'MOUNTS', Networks: 'NETWORKS',
    }));
  },
};

/** docker port: NetworkSettings.Ports from inspect, as `80/tcp -> 0.0.0.0:8080`, naturally sorted. */
export const port: Command = {
  usage: `Usage:  berth port CONTAINER [PRIVATE_PORT[/PROTO]]

List port mappings or a specific mapping for the container

Aliases:
  berth container port, berth port
`,
  description: 'List port mappings or a specific mapping for the container',
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 1, 2, this.usage);
    const [name, wanted] = positionals;
    const c = await ctx.client().json<{ NetworkSettings?: { Ports?: Record<string, { HostIp: string; HostPort: string }[] | null> | null } }>(
      'GET', `/containers/${encodeURIComponent(name)}/json`);
    const ports = c.NetworkSettings?.Ports ?? {};
    const out: string[] = [];
    if (wanted !== undefined) {
      const slash = wanted.indexOf('/');
      const num = slash < 0 ? wanted : wanted.slice(0, slash);
      const proto = slash < 0 || slash === wanted.length - 1 ? 'tcp' : wanted.slice(slash + 1);
      if (!/^\d+$/.test(num) || Number(num) > 65535) {
        throw new CliError(`Error: invalid port (${num}): strconv.ParseUint: parsing ${JSON.stringify(num)}: ${/^\d+$/.test(num) ? 'value out of range' : 'invalid syntax'}`);
      }
      const key = `${num}/${proto}`;
      const frontends = ports[key];
      if (!frontends) throw new CliError(`Error: No public port '${wanted}' published for ${name}`);
      for (const f of frontends) out.push(joinHostPort(f.HostIp, f.HostPort));
    } else {
      for (const [from, frontends] of Object.entries(ports)) {
        for (const f of frontends ?? []) out.push(`${from} -> ${joinHostPort(f.HostIp, f.HostPort)}`);
      }
    }
    out.sort((a, b) => (naturalLess(a, b) ? -1 : naturalLess(b, a) ? 1 : 0));
    if (out.length) ctx.io.out(`${out.join('\n')}\n`);
  },
};
