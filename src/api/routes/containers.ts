import type { Duplex } from 'node:stream';
import { DEFAULT_DETACH_KEYS, EscapeMatcher, parseDetachKeys } from '../../common/detach-keys.ts';
import { invalidArgument } from '../../common/errors.ts';
import { Deframer, frame, StdStream } from '../../common/stdcopy.ts';
import { readJsonLog } from '../../logs/jsonfile.ts';
import type { ContainerRecord } from '../../metadata/containers.ts';
import { type ContainerService, statusText } from '../../services/containers.ts';
import type { MountJson } from '../../services/volumes.ts';
import type { NetworkService } from '../../services/networks.ts';
import { boolParam, readJsonBody, type Context, type Route } from '../server.ts';

/** Docker's ContainerSummary (GET /containers/json). */
export function containerSummary(c: ContainerRecord, mounts: MountJson[], net: { Ports: unknown[]; Networks: unknown }): Record<string, unknown> {
  const cmd = [...(c.config.Entrypoint ?? []), ...(c.config.Cmd ?? [])];
  return {
    Id: c.id, Names: [`/${c.name}`], Image: c.image, ImageID: c.imageId, Command: cmd.map(quoteArg).join(' '),
    Created: Math.floor(Date.parse(c.created) / 1000), Ports: net.Ports, Labels: c.config.Labels ?? {}, State: c.state.Status,
    Status: statusText(c.state), HostConfig: { NetworkMode: c.hostConfig.NetworkMode ?? 'default' },
    NetworkSettings: { Networks: net.Networks }, Mounts: mounts,
  };
}

const quoteArg = (a: string) => (/\s/.test(a) ? JSON.stringify(a) : a);

/** Docker's ContainerJSON (GET /containers/{id}/json). */
function inspect(c: ContainerRecord, logPath: string, mounts: MountJson[], networkSettings: Record<string, unknown>, execIds: string[]): Record<string, unknown> {
  const args = [...(c.config.Entrypoint ?? []), ...(c.config.Cmd ?? [])];
  const { ManuallyStopped: _m, ...state } = c.state as typeof c.state & { ManuallyStopped?: boolean };
  return {
    Id: c.id, Created: c.created, Path: args[0] ?? '', Args: args.slice(1), State: state, Image: c.imageId,
    ResolvConfPath: '', HostnamePath: '', HostsPath: '', LogPath: logPath, Name: `/${c.name}`, RestartCount: c.restartCount,
    Driver: 'overlayfs', Platform: 'linux', MountLabel: '', ProcessLabel: '', AppArmorProfile: '', ExecIDs: execIds.length ? execIds : null,
    HostConfig: c.hostConfig, GraphDriver: { Name: 'overlayfs', Data: {} }, Mounts: mounts,
    Config: c.config,
    NetworkSettings: networkSettings,
  };
}

const NO_NETWORK = { Ports: [], Networks: {} };

/** What container inspect and list show from other services. */
export interface ContainerViews {
  networks?: NetworkService;
  /** SizeRw and SizeRootFs (`ps -s`). */
  sizes?: (c: ContainerRecord) => Promise<{ SizeRw: number; SizeRootFs: number }>;
  /** The container's exec instances (inspect's ExecIDs). */
  execIds?: (c: ContainerRecord) => string[];
}

export function containerRoutes(svc: ContainerService, views: ContainerViews = {}): Route[] {
  const { networks, sizes, execIds } = views;
  return [
    {
      method: 'POST', path: '/containers/create', handler: async (ctx) => {
        const body = await readJsonBody<Record<string, any>>(ctx.req);
        if (!body) throw invalidArgument('config cannot be empty in order to create a container');
        const c = await svc.create(body, ctx.query.get('name') || undefined, ctx.query.get('platform') || undefined);
        ctx.res.writeHead(201, { 'Content-Type': 'application/json' });
        ctx.res.end(JSON.stringify({ Id: c.id, Warnings: c.warnings }));
      },
    },
    { method: 'POST', path: '/containers/prune', handler: (ctx) => svc.prune(ctx.query.get('filters')) },
    {
      method: 'GET', path: '/containers/json', handler: async (ctx) => {
        const list = svc.list({ all: boolParam(ctx.query, 'all'), limit: Number(ctx.query.get('limit') ?? 0) || undefined, filters: ctx.query.get('filters') });
        const withSize = boolParam(ctx.query, 'size') && sizes;
        const out = [];
        for (const c of list) {
          const s = containerSummary(c, svc.mounts(c), networks?.summary(c) ?? NO_NETWORK);
          out.push(withSize ? { ...s, ...(await sizes(c)) } : s);
        }
        return out;
      },
    },
    { method: 'GET', path: '/containers/{id}/json', handler: (ctx) => {
      const c = svc.resolve(ctx.params.id);
      return inspect(c, svc.logPath(c), svc.mounts(c), networks?.settings(c) ?? { Ports: {}, Networks: {} }, execIds?.(c) ?? []);
    } },
    { method: 'POST', path: '/containers/{id}/start', handler: async (ctx) => notModifiedIf(ctx, (await svc.start(ctx.params.id)) === 'already') },
    { method: 'POST', path: '/containers/{id}/stop', handler: async (ctx) => notModifiedIf(ctx, (await svc.stop(ctx.params.id, stopOpts(ctx))) === 'already') },
    { method: 'POST', path: '/containers/{id}/restart', handler: async (ctx) => void (await svc.restart(ctx.params.id, stopOpts(ctx))) },
    { method: 'POST', path: '/containers/{id}/kill', handler: async (ctx) => void (await svc.kill(ctx.params.id, ctx.query.get('signal') || 'SIGKILL')) },
    { method: 'POST', path: '/containers/{id}/pause', handler: async (ctx) => void (await svc.pause(ctx.params.id)) },
    { method: 'POST', path: '/containers/{id}/unpause', handler: async (ctx) => void (await svc.unpause(ctx.params.id)) },
    { method: 'POST', path: '/containers/{id}/wait', handler: async (ctx) => {
      const c = svc.resolve(ctx.params.id);
      // Headers go out at once: the CLI's `run` waits on this before it starts the container.
      ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
      ctx.res.flushHeaders();
      const r = await svc.wait(c.id, ctx.query.get('condition') || 'not-running', ctx.signal);
      ctx.res.end(JSON.stringify(r));
    } },
    { method: 'DELETE', path: '/containers/{id}', handler: async (ctx) => void (await svc.remove(ctx.params.id, { force: boolParam(ctx.query, 'force'), volumes: boolParam(ctx.query, 'v') })) },
    { method: 'POST', path: '/containers/{id}/rename', handler: (ctx) => {
      const name = ctx.query.get('name');
      if (!name) throw invalidArgument('Neither old nor new names may be empty');
      svc.rename(ctx.params.id, name);
    } },
    { method: 'POST', path: '/containers/{id}/resize', handler: async (ctx) => {
      await svc.resize(ctx.params.id, Number(ctx.query.get('h') ?? 0), Number(ctx.query.get('w') ?? 0));
      ctx.res.writeHead(200);
      ctx.res.end();
    } },
    { method: 'GET', path: '/containers/{id}/logs', handler: (ctx) => logs(svc, ctx) },
    { method: 'POST', path: '/containers/{id}/attach', handler: (ctx) => attach(svc, ctx) },
  ];
}

function notModifiedIf(ctx: Context, cond: boolean): void {
  if (!cond) return;
  ctx.res.writeHead(304);
  ctx.res.end();
}

function stopOpts(ctx: Context): { timeout?: number; signal?: string } {
  const t = ctx.query.get('t');
  return { timeout: t === null || t === '' ? undefined : Number(t), signal: ctx.query.get('signal') || undefined };
}

async function logs(svc: ContainerService, ctx: Context): Promise<void> {
  const c = svc.resolve(ctx.params.id);
  const q = ctx.query;
  const stdout = boolParam(q, 'stdout');
  const stderr = boolParam(q, 'stderr');
  if (!stdout && !stderr) throw invalidArgument('You must choose at least one stream');
  const tail = q.get('tail');
  const since = q.get('since');
  const until = q.get('until');
  const toNs = (v: string) => {
    const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(v);
    if (!m) throw invalidArgument(`invalid timestamp "${v}"`);
    return BigInt(m[1]) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
  };
  const tty = Boolean(c.config.Tty);
  const timestamps = boolParam(q, 'timestamps');
  ctx.res.writeHead(200, { 'Content-Type': tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream' });
  ctx.res.flushHeaders();
  const follow = boolParam(q, 'follow') && c.state.Running;
  const entries = readJsonLog(svc.logPath(c), Number(c.hostConfig.LogConfig?.Config?.['max-file'] ?? 1), {
    tail: tail && tail !== 'all' ? Number(tail) : undefined,
    sinceNs: since && since !== '0' ? toNs(since) : undefined,
    untilNs: until ? toNs(until) : undefined,
    follow, done: follow ? svc.exitOf(c) : undefined, signal: ctx.signal,
  });
  for await (const e of entries) {
    if ((e.stream === 'stdout' && !stdout) || (e.stream === 'stderr' && !stderr)) continue;
    const text = timestamps ? `${e.time} ${e.log}` : e.log;
    const ok = ctx.res.write(tty ? text : frame(e.stream === 'stderr' ? StdStream.stderr : StdStream.stdout, Buffer.from(text)));
    if (!ok) await new Promise((r) => ctx.res.once('drain', r));
  }
  ctx.res.end();
}

/** Attach: the monitor's frames to the client (unframed for a TTY), the client's bytes to the container's stdin. */
async function attach(svc: ContainerService, ctx: Context): Promise<void> {
  const c = svc.resolve(ctx.params.id);
  const q = ctx.query;
  const wantStdin = boolParam(q, 'stdin');
  const wantOut = boolParam(q, 'stdout');
  const wantErr = boolParam(q, 'stderr');
  const tty = Boolean(c.config.Tty);
  // Registered before the 101 goes out: once the client sees it, it may start the container at once.
  const connecting = svc.attach(c.id);
  const client = ctx.hijack();
  // A client that hangs up (a detach, a closed terminal) must never take the daemon down with EPIPE.
  client.on('error', () => {});
  const conn: Duplex = await connecting;
  conn.on('error', () => {});
  const deframer = new Deframer();
  conn.on('data', (chunk: Buffer) => {
    for (const { stream, payload } of deframer.push(chunk)) {
      if ((stream === StdStream.stdout && !wantOut) || (stream === StdStream.stderr && !wantErr)) continue;
      client.write(tty ? payload : frame(stream, payload));
    }
  });
  let detach!: () => void;
  const done = new Promise<void>((resolve) => {
    conn.once('close', () => resolve());
    client.once('close', () => resolve());
    detach = resolve;
  });
  if (wantStdin) {
    // With a TTY the daemon notices the detach keys too (for API clients; the docker CLI does it itself).
    const escape = tty ? new EscapeMatcher(parseDetachKeys(q.get('detachKeys') || DEFAULT_DETACH_KEYS) ?? parseDetachKeys(DEFAULT_DETACH_KEYS)!) : undefined;
    client.on('data', (b: Buffer) => {
      const r = escape ? escape.push(b) : { pass: b, detached: false };
      if (r.pass.length) conn.write(r.pass);
      if (r.detached) detach();
    });
    client.once('end', () => {
      // With StdinOnce (the CLI's `run -i`), the container's stdin closes when the client's does;
      // not with a TTY, as in Docker, so that a detach (ctrl-p ctrl-q) leaves the shell running.
      if (c.config.StdinOnce && !tty) svc.closeStdin(c).catch(() => {});
    });
  }
  await done;
  conn.destroy();
  client.end();
}
