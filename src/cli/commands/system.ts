import { arch } from 'node:os';
import { type Command, CliError, confirm, filtersParam, flags, requireArgs } from '../command.ts';
import { humanSize } from '../../common/units.ts';
import { pruneImages } from './images.ts';
import { CLIENT_API_VERSION } from '../../api-client/client.ts';

const CLI_VERSION = '0.1.0';
const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };

export const version: Command = {
  usage: `Usage:  berth version [OPTIONS]

Show the berth version information

Options:
  -f, --format string   Format output using a custom template
`,
  description: 'Show the berth version information',
  async run(ctx) {
    const { values } = flags(ctx, { format: { type: 'string', short: 'f' } }, this.usage);
    const client = {
      Version: CLI_VERSION, ApiVersion: CLIENT_API_VERSION, DefaultAPIVersion: CLIENT_API_VERSION, GitCommit: 'berth',
      GoVersion: `node${process.versions.node}`, Os: 'linux', Arch: GO_ARCH[arch()] ?? arch(), Context: 'default',
    };
    const needsServer = !values.format || values.format.includes('.Server');
    let server: Record<string, unknown> | undefined;
    let serverErr: Error | undefined;
    if (needsServer) {
      try {
        server = await ctx.client().json('GET', '/version');
      } catch (e) {
        serverErr = e as Error;
      }
    }
    if (values.format) {
      const { parseTemplate } = await import('../format/template.ts');
      ctx.io.out(parseTemplate(values.format).execute({ Client: client, Server: server ?? null }) + '\n');
    } else {
      let s = `Client:\n Version:           ${client.Version}\n API version:       ${client.ApiVersion}\n Node version:      ${process.versions.node}\n OS/Arch:           ${client.Os}/${client.Arch}\n`;
      if (server) {
        const d = server as { Version: string; ApiVersion: string; MinAPIVersion: string; GoVersion: string; Os: string; Arch: string; KernelVersion: string };
        s += `\nServer: berth\n Engine:\n  Version:          ${d.Version}\n  API version:      ${d.ApiVersion} (minimum version ${d.MinAPIVersion})\n  Node version:     ${d.GoVersion.replace(/^node/, '')}\n  OS/Arch:          ${d.Os}/${d.Arch}\n  Kernel version:   ${d.KernelVersion}\n`;
      }
      ctx.io.out(s);
    }
    if (serverErr) throw serverErr;
  },
};

export const info: Command = {
  usage: `Usage:  berth info [OPTIONS]

Display system-wide information

Options:
  -f, --format string   Format output using a custom template
`,
  description: 'Display system-wide information',
  async run(ctx) {
    const { values } = flags(ctx, { format: { type: 'string', short: 'f' } }, this.usage);
    const i = await ctx.client().json<Record<string, any>>('GET', '/info');
    if (values.format) {
      const { parseTemplate } = await import('../format/template.ts');
      ctx.io.out(parseTemplate(values.format).execute(i) + '\n');
      return;
    }
    ctx.io.out(`Server:
 Containers: ${i.Containers}
  Running: ${i.ContainersRunning}
  Paused: ${i.ContainersPaused}
  Stopped: ${i.ContainersStopped}
 Images: ${i.Images}
 Server Version: ${i.ServerVersion}
 Storage Driver: ${i.Driver}
 Logging Driver: ${i.LoggingDriver}
 Cgroup Driver: ${i.CgroupDriver}
 Cgroup Version: ${i.CgroupVersion}
 Runtimes: ${Object.keys(i.Runtimes ?? {}).join(' ')}
 Default Runtime: ${i.DefaultRuntime}
 Security Options:
${(i.SecurityOptions ?? []).map((o: string) => `  ${o.replace(/^name=/, '').split(',')[0]}`).join('\n')}
 Kernel Version: ${i.KernelVersion}
 Operating System: ${i.OperatingSystem}
 OSType: ${i.OSType}
 Architecture: ${i.Architecture}
 CPUs: ${i.NCPU}
 Total Memory: ${(i.MemTotal / 1024 ** 3).toFixed(2)}GiB
 Name: ${i.Name}
 ID: ${i.ID}
 Berth Root Dir: ${i.DockerRootDir}
 Live Restore Enabled: ${i.LiveRestoreEnabled}
`);
  },
};

interface DiskUsage {
  LayersSize: number;
  Images: { Id: string; Size: number; SharedSize: number; Containers: number; RepoTags: string[] }[] | null;
  Containers: unknown[] | null;
  Volumes: unknown[] | null;
  BuildCache: unknown[] | null;
}

/** A `system df` row: the size of every item, and of those not in use (what a prune would reclaim). */
function usageRow<T>(type: string, items: T[], inUse: (x: T) => boolean, size: (x: T) => number): Record<string, string> {
  const total = items.reduce((n, x) => n + size(x), 0);
  const reclaimable = items.filter((x) => !inUse(x)).reduce((n, x) => n + size(x), 0);
  return {
    Type: type, TotalCount: String(items.length), Active: String(items.filter(inUse).length), Size: humanSize(total),
    Reclaimable: `${humanSize(reclaimable)}${total > 0 ? ` (${Math.round((reclaimable / total) * 100)}%)` : ''}`,
  };
}

export const df: Command = {
  usage: `Usage:  berth system df [OPTIONS]

Show berth disk usage

Options:
      --format string   Format output using a custom template
  -v, --verbose         Show detailed information on space usage
`,
  description: 'Show berth disk usage',
  async run(ctx) {
    const { values } = flags(ctx, { format: { type: 'string' }, verbose: { type: 'boolean', short: 'v' } }, this.usage);
    const du = await ctx.client().json<DiskUsage>('GET', '/system/df');
    const images = du.Images ?? [];
    const containers = (du.Containers ?? []) as { State: string; SizeRw?: number }[];
    const volumes = (du.Volumes ?? []) as { UsageData?: { Size: number; RefCount: number } | null }[];
    const active = images.filter((i) => i.Containers > 0);
    const reclaimable = images.filter((i) => i.Containers <= 0).reduce((n, i) => n + i.Size, 0);
    const pct = (part: number, whole: number) => (whole > 0 ? ` (${Math.round((part / whole) * 100)}%)` : '');
    const rows = [
      { Type: 'Images', TotalCount: String(images.length), Active: String(active.length), Size: humanSize(du.LayersSize), Reclaimable: `${humanSize(reclaimable)}${pct(reclaimable, du.LayersSize)}` },
      usageRow('Containers', containers, (c) => c.State === 'running', (c) => c.SizeRw ?? 0),
      usageRow('Local Volumes', volumes, (v) => (v.UsageData?.RefCount ?? 0) > 0, (v) => Math.max(v.UsageData?.Size ?? 0, 0)),
      usageRow('Build Cache', (du.BuildCache ?? []) as { InUse?: boolean; Size?: number }[], (b) => b.InUse === true, (b) => b.Size ?? 0),
    ];
    const format = values.format && values.format !== 'table' ? values.format : 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}';
    const { formatItems } = await import('../format/table.ts');
    ctx.io.out(formatItems(format, rows, { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' }));
  },
};

export const prune: Command = {
  usage: `Usage:  berth system prune [OPTIONS]

Remove unused data

Options:
  -a, --all             Remove all unused images not just dangling ones
      --filter filter   Provide filter values (e.g. "label=<key>=<value>")
  -f, --force           Do not prompt for confirmation
      --volumes         Prune anonymous volumes
`,
  description: 'Remove unused data',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      all: { type: 'boolean', short: 'a' }, filter: { type: 'string', multiple: true }, force: { type: 'boolean', short: 'f' }, volumes: { type: 'boolean' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const lines = ['  - all stopped containers', '  - all networks not used by at least one container'];
    if (values.volumes) lines.push('  - all anonymous volumes not used by at least one container');
    lines.push(values.all ? '  - all images without at least one container associated to them' : '  - all dangling images');
    lines.push(values.all ? '  - all build cache' : '  - unused build cache');
    if (!values.force && !(await confirm(ctx.io, `WARNING! This will remove:\n${lines.join('\n')}\n\nAre you sure you want to continue?`))) return 0;
    const filters = filtersParam(values.filter);
    const c = ctx.client();
    let reclaimed = 0;
    reclaimed += (await c.json<{ SpaceReclaimed: number }>('POST', '/containers/prune', { query: { filters } })).SpaceReclaimed ?? 0;
    const nets = await c.json<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune', { query: { filters } });
    if (nets.NetworksDeleted?.length) ctx.io.out(`Deleted Networks:\n${nets.NetworksDeleted.join('\n')}\n\n`);
    if (values.volumes) reclaimed += (await c.json<{ SpaceReclaimed: number }>('POST', '/volumes/prune', { query: { filters } })).SpaceReclaimed ?? 0;
    reclaimed += await pruneImages(ctx, Boolean(values.all), values.filter ?? []);
    reclaimed += (await c.json<{ SpaceReclaimed: number }>('POST', '/build/prune', { query: { all: values.all, filters } })).SpaceReclaimed ?? 0;
    ctx.io.out(`Total reclaimed space: ${humanSize(reclaimed)}\n`);
  },
};

export const events: Command = {
  usage: `Usage:  berth system events [OPTIONS]

Get real time events from the server

Aliases:
  berth system events, berth events

Options:
  -f, --filter filter   Filter output based on conditions provided
      --format string   Format output using a custom template
      --since string    Show all events created since timestamp
      --until string    Stream events until this timestamp
`,
  description: 'Get real time events from the server',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      filter: { type: 'string', short: 'f', multiple: true }, format: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const tmpl = values.format && values.format !== 'json' ? (await import('../format/template.ts')).parseTemplate(values.format) : undefined;
    const res = await ctx.client().request('GET', '/events', {
      query: { since: values.since && eventTime(values.since), until: values.until && eventTime(values.until), filters: filtersParam(values.filter) },
    });
    for await (const e of ctx.client().messages<{ Type: string; Action: string; Actor: { ID: string; Attributes: Record<string, string> }; timeNano: number }>(res)) {
      if (values.format === 'json') ctx.io.out(JSON.stringify(e) + '\n');
      else if (tmpl) ctx.io.out(tmpl.execute(e) + '\n');
      else {
        const attrs = Object.entries(e.Actor.Attributes).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => `${k}=${v}`).join(', ');
        const ns = BigInt(e.timeNano);
        const iso = new Date(Number(ns / 1_000_000n)).toISOString().replace(/\.\d+Z$/, `.${String(ns % 1_000_000_000n).padStart(9, '0')}Z`);
        ctx.io.out(`${iso} ${e.Type} ${e.Action} ${e.Actor.ID}${attrs ? ` (${attrs})` : ''}\n`);
      }
    }
  },
};

/** The CLI's time forms for --since/--until: unix seconds, RFC 3339, or a duration back from now. */
function eventTime(v: string): string {
  if (/^\d+(\.\d+)?$/.test(v)) return v;
  const m = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$/.exec(v);
  if (m) {
    const mult = { ns: 1e-9, us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 }[m[2] as 's'];
    return (Date.now() / 1000 - Number(m[1]) * mult).toFixed(9);
  }
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new CliError(`invalid time "${v}"`);
  return (t / 1000).toFixed(9);
}
