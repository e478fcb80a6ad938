import { hostname, cpus, totalmem, release, arch, type } from 'node:os';
import { invalidArgument } from '../../common/errors.ts';
import type { EventBus, EventMessage } from '../../services/events.ts';
import { parseFilters } from '../../services/filters.ts';
import { API_VERSION, MIN_API_VERSION, type Route } from '../server.ts';

export interface SystemBackend {
  events: EventBus;
  dataRoot: string;
  daemonId: string;
  version: string;
  counts(): { images: number; containers: number; running: number; paused: number; stopped: number };
  diskUsage(types: Set<string>): Promise<unknown>;
}

const KERNEL_ARCH: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };

export function systemRoutes(b: SystemBackend): Route[] {
  const ping = (ctx: { res: import('node:http').ServerResponse }) => {
    ctx.res.writeHead(200, {
      'Content-Type': 'text/plain; charset=utf-8',
      'Cache-Control': 'no-cache, no-store, must-revalidate',
      Pragma: 'no-cache',
      'Builder-Version': '1',
      'Swarm': 'inactive',
    });
    ctx.res.end(ctx.res.req.method === 'HEAD' ? undefined : 'OK');
  };
  return [
    { method: 'GET', path: '/_ping', handler: ping },
    { method: 'HEAD', path: '/_ping', handler: ping },
    {
      method: 'GET', path: '/version', handler: () => {
        const details = {
          ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, GitCommit: 'berth', GoVersion: `node${process.versions.node}`,
          Os: 'linux', Arch: GO_ARCH[arch()] ?? arch(), KernelVersion: release(), BuildTime: '',
        };
        return {
          Platform: { Name: 'berth' },
          Components: [{ Name: 'Engine', Version: b.version, Details: details }],
          Version: b.version, ...details,
        };
      },
    },
    {
      method: 'GET', path: '/info', handler: () => {
        const c = b.counts();
        return {
          ID: b.daemonId, Containers: c.containers, ContainersRunning: c.running, ContainersPaused: c.paused, ContainersStopped: c.stopped,
          Images: c.images, Driver: 'overlayfs', DriverStatus: [['driver-type', 'overlay snapshots']],
          Plugins: { Volume: ['local'], Network: ['bridge', 'host', 'none'], Authorization: null, Log: ['json-file'] },
          MemoryLimit: true, SwapLimit: true, KernelMemoryTCP: false, CpuCfsPeriod: true, CpuCfsQuota: true, CPUShares: true, CPUSet: true, PidsLimit: true,
          IPv4Forwarding: true, Debug: false, NFd: 0, OomKillDisable: false, NGoroutines: 0, SystemTime: new Date().toISOString(),
          LoggingDriver: 'json-file', CgroupDriver: 'cgroupfs', CgroupVersion: '1', NEventsListener: 0,
          KernelVersion: release(), OperatingSystem: type() === 'Linux' ? 'Linux' : type(), OSVersion: '', OSType: 'linux',
          Architecture: KERNEL_ARCH[arch()] ?? arch(), IndexServerAddress: 'https://index.docker.io/v1/',
          RegistryConfig: { InsecureRegistryCIDRs: ['127.0.0.0/8', '::1/128'], IndexConfigs: {}, Mirrors: [] },
          NCPU: cpus().length, MemTotal: totalmem(), GenericResources: null, DockerRootDir: b.dataRoot,
          HttpProxy: '', HttpsProxy: '', NoProxy: '', Name: hostname(), Labels: [], ExperimentalBuild: false,
          ServerVersion: b.version, Runtimes: { runc: { path: 'runc' } }, DefaultRuntime: 'runc',
          Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
          LiveRestoreEnabled: true, Isolation: '', InitBinary: 'tini',
          ContainerdCommit: { ID: '' }, RuncCommit: { ID: '' }, InitCommit: { ID: '' },
          SecurityOptions: ['name=seccomp,profile=builtin'], CDISpecDirs: [], Warnings: [],
        };
      },
    },
    {
      method: 'GET', path: '/system/df', handler: (ctx) => {
        const types = new Set(ctx.query.getAll('type'));
        return b.diskUsage(types.size ? types : new Set(['image', 'container', 'volume', 'build-cache']));
      },
    },
    {
      method: 'GET', path: '/events', handler: async (ctx) => {
        const since = ctx.query.get('since');
        const until = ctx.query.get('until');
        const filters = parseFilters(ctx.query.get('filters'), ['type', 'event', 'image', 'container', 'label', 'volume', 'network', 'daemon', 'scope']);
        const sub = b.events.subscribe({ sinceNs: since ? timeParam(since) : undefined, untilNs: until ? timeParam(until) : undefined, signal: ctx.signal });
        ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
        ctx.res.flushHeaders();
        for await (const e of sub) {
          if (matchEvent(e, filters)) ctx.res.write(JSON.stringify(e) + '\n');
        }
        ctx.res.end();
      },
    },
  ];
}

/** Docker's event times: `secs` or `secs.nanos`. */
function timeParam(v: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(v);
  if (!m) throw invalidArgument(`invalid timestamp "${v}"`);
  return BigInt(m[1]) * 1_000_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
}

function matchEvent(e: EventMessage, f: Map<string, string[]>): boolean {
  const any = (k: string, test: (v: string) => boolean) => !f.has(k) || f.get(k)!.some(test);
  const attrs = e.Actor.Attributes;
  return (
    any('type', (v) => v === e.Type) &&
    any('event', (v) => v === e.Action || e.Action.startsWith(`${v}:`)) &&
    any('image', (v) => e.Type === 'image' ? e.Actor.ID.includes(v) || attrs.name === v || attrs.name?.split(':')[0] === v : attrs.image === v) &&
    any('container', (v) => e.Type === 'container' && (e.Actor.ID.startsWith(v) || attrs.name === v)) &&
    any('volume', (v) => e.Type === 'volume' && e.Actor.ID === v) &&
    any('network', (v) => e.Type === 'network' && (e.Actor.ID.startsWith(v) || attrs.name === v)) &&
    any('label', (v) => {
      const i = v.indexOf('=');
      return i < 0 ? v in attrs : attrs[v.slice(0, i)] === v.slice(i + 1);
    }) &&
    any('scope', (v) => v === e.scope)
  );
}
