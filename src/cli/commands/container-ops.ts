import { ApiError } from '../../api-client/client.ts';
import { humanSize, parseBytes } from '../../common/units.ts';
import { type Command, type CommandContext, CliError, UsageError, flags, requireArgs } from '../command.ts';
import { formatItems, tabwrite } from '../format/table.ts';

const enc = encodeURIComponent;

export const top: Command = {
  usage: `Usage:  berth top CONTAINER [ps OPTIONS]

Display the running processes of a container
`,
  description: 'Display the running processes of a container',
  async run(ctx) {
    const { positionals } = flags({ ...ctx, args: ctx.args.slice(0, 1) }, {}, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const psArgs = ctx.args.slice(1).join(' ');
    const r = await ctx.client().json<{ Titles: string[]; Processes: string[][] }>('GET', `/containers/${enc(positionals[0])}/top`, { query: { ps_args: psArgs || undefined } });
    ctx.io.out(tabwrite([r.Titles, ...r.Processes].map((row) => `${row.join('\t')}\n`).join('')));
  },
};

/** go-units' BytesSize: binary units, four significant digits. */
export function bytesSize(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${Number(n.toPrecision(4))}${units[i]}`;
}

interface StatsJson {
  id: string;
  name: string;
  read: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  pids_stats?: { current?: number };
  blkio_stats?: { io_service_bytes_recursive?: { op: string; value: number }[] | null };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number }>;
}

/** One row of `docker stats`, with the docker CLI's arithmetic (stats_helpers.go). */
export function statsRow(s: StatsJson, trunc = true): Record<string, string> {
  const cpu = s.cpu_stats ?? {};
  const pre = s.precpu_stats ?? {};
  const cpuDelta = (cpu.cpu_usage?.total_usage ?? 0) - (pre.cpu_usage?.total_usage ?? 0);
  const sysDelta = (cpu.system_cpu_usage ?? 0) - (pre.system_cpu_usage ?? 0);
  const online = cpu.online_cpus || cpu.cpu_usage?.percpu_usage?.length || 0;
  const cpuPct = sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * online * 100 : 0;
  const mem = s.memory_stats ?? {};
  const usage = mem.usage ?? 0;
  const stats = mem.stats ?? {};
  let used = usage;
  if (stats.total_inactive_file !== undefined && stats.total_inactive_file < usage) used = usage - stats.total_inactive_file;
  else if (stats.inactive_file !== undefined && stats.inactive_file < usage) used = usage - stats.inactive_file;
  const limit = mem.limit ?? 0;
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += n.rx_bytes;
    tx += n.tx_bytes;
  }
  let read = 0;
  let write = 0;
  for (const b of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (b.op.toLowerCase() === 'read') read += b.value;
    else if (b.op.toLowerCase() === 'write') write += b.value;
  }
  const name = s.name.replace(/^\//, '');
  return {
    ID: trunc ? s.id.slice(0, 12) : s.id, Container: name || s.id.slice(0, 12), Name: name,
    CPUPerc: `${cpuPct.toFixed(2)}%`, MemUsage: `${bytesSize(used)} / ${bytesSize(limit)}`, MemPerc: `${(limit ? (used / limit) * 100 : 0).toFixed(2)}%`,
    NetIO: `${humanSize(rx)} / ${humanSize(tx)}`, BlockIO: `${humanSize(read)} / ${humanSize(write)}`, PIDs: String(s.pids_stats?.current ?? 0),
  };
}

const STATS_HEADERS = {
  ID: 'CONTAINER ID', Name: 'NAME', CPUPerc: 'CPU %', MemUsage: 'MEM USAGE / LIMIT', MemPerc: 'MEM %', NetIO: 'NET I/O', BlockIO: 'BLOCK I/O', PIDs: 'PIDS', Container: 'CONTAINER',
};
const STATS_TABLE = 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}';

export const stats: Command = {
  usage: `Usage:  berth stats [OPTIONS] [CONTAINER...]

Display a live stream of container(s) resource usage statistics

Options:
  -a, --all             Show all containers (default shows just running)
      --format string   Format output using a custom template
      --no-stream       Disable streaming stats and only pull the first result
      --no-trunc        Do not truncate output
`,
  description: 'Display a live stream of container(s) resource usage statistics',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      all: { type: 'boolean', short: 'a' }, format: { type: 'string' }, 'no-stream': { type: 'boolean' }, 'no-trunc': { type: 'boolean' },
    }, this.usage);
    const client = ctx.client();
    const list = async () => (await client.json<{ Id: string }[]>('GET', '/containers/json', { query: { all: values.all } })).map((c) => c.Id);
    const names = positionals.length ? positionals : await list();
    const format = values.format && values.format !== 'table' ? values.format : STATS_TABLE;
    const render = (rows: Record<string, string>[]) => formatItems(format, rows, STATS_HEADERS);
    const trunc = !values['no-trunc'];
    if (values['no-stream']) {
      const rows: Record<string, string>[] = [];
      let failed = false;
      for (const n of names) {
        try {
          rows.push(statsRow(await client.json<StatsJson>('GET', `/containers/${enc(n)}/stats`, { query: { stream: false } }), trunc));
        } catch (e) {
          if (!(e instanceof ApiError)) throw e;
          ctx.io.err(`Error response from daemon: ${e.message}\n`);
          failed = true;
        }
      }
      if (rows.length || !failed) ctx.io.out(render(rows));
      return failed ? 1 : 0;
    }
    return streamStats(ctx, names, render, trunc, positionals.length ? undefined : list);
  },
};

/**
 * The live view: every container's newest sample, redrawn each second until
 * interrupted. Named containers are followed until all have gone; without
 * names (`discover`), the list is read again each second, so containers that
 * start later join the table and removed ones leave it.
 */
async function streamStats(ctx: CommandContext, names: string[], render: (rows: Record<string, string>[]) => string, trunc: boolean, discover?: () => Promise<string[]>): Promise<number> {
  const latest = new Map<string, Record<string, string>>();
  const client = ctx.client();
  const followed = new Set<string>();
  let shown = names;
  let open = 0;
  const follow = (n: string) => {
    if (followed.has(n)) return;
    followed.add(n);
    open++;
    (async () => {
      try {
        const res = await client.request('GET', `/containers/${enc(n)}/stats`, { query: { stream: true } });
        for await (const s of client.messages<Record<string, unknown>>(res)) latest.set(n, statsRow(s as unknown as StatsJson, trunc));
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        if (!discover) ctx.io.err(`Error response from daemon: ${e.message}\n`);
      } finally {
        open--;
        if (discover) followed.delete(n);
      }
    })().catch((e) => ctx.io.err(`${(e as Error).message}\n`));
  };
  names.forEach(follow);
  while (open > 0 || discover) {
    await new Promise((r) => setTimeout(r, 1000));
    if (discover) {
      shown = await discover().catch(() => shown);
      shown.forEach(follow);
    }
    ctx.io.out(`\x1b[2J\x1b[H${render(shown.map((n) => latest.get(n)).filter((r) => r !== undefined))}`);
  }
  return 0;
}

/** `--pids-limit -1`, `-m -1`: a negative number after a flag is that flag's value (parseArgs would call it ambiguous). */
function negativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = args[i + 1];
    if (/^--?[a-z]/.test(a) && !a.includes('=') && next !== undefined && /^-\d/.test(next)) {
      out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

export const update: Command = {
  usage: `Usage:  berth update [OPTIONS] CONTAINER [CONTAINER...]

Update configuration of one or more containers

Options:
      --blkio-weight uint16        Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
      --cpu-period int             Limit CPU CFS (Completely Fair Scheduler) period
      --cpu-quota int              Limit CPU CFS (Completely Fair Scheduler) quota
  -c, --cpu-shares int             CPU shares (relative weight)
      --cpus decimal               Number of CPUs
      --cpuset-cpus string         CPUs in which to allow execution (0-3, 0,1)
      --cpuset-mems string         MEMs in which to allow execution (0-3, 0,1)
  -m, --memory bytes               Memory limit
      --memory-reservation bytes   Memory soft limit
      --memory-swap bytes          Swap limit equal to memory plus swap: -1 to enable unlimited swap
      --pids-limit int             Tune container pids limit (set -1 for unlimited)
      --restart string             Restart policy to apply when a container exits
`,
  description: 'Update configuration of one or more containers',
  async run(ctx) {
    const args = negativeValues(ctx.args);
    const { values, positionals } = flags({ ...ctx, args }, {
      'blkio-weight': { type: 'string' }, 'cpu-period': { type: 'string' }, 'cpu-quota': { type: 'string' }, 'cpu-shares': { type: 'string', short: 'c' },
      cpus: { type: 'string' }, 'cpuset-cpus': { type: 'string' }, 'cpuset-mems': { type: 'string' }, memory: { type: 'string', short: 'm' },
      'memory-reservation': { type: 'string' }, 'memory-swap': { type: 'string' }, 'pids-limit': { type: 'string' }, restart: { type: 'string' },
      'kernel-memory': { type: 'string' },
    }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    const bytes = (flag: string, label: string) => {
      const v = (values as Record<string, string | undefined>)[flag];
      if (v === undefined) return undefined;
      if (v === '-1') return -1;
      const n = parseBytes(v);
      if (n === undefined) throw new UsageError(`invalid argument "${v}" for "${label}" flag: invalid size: '${v}'`, 125);
      return n;
    };
    const int = (flag: string, label: string) => {
      const v = (values as Record<string, string | undefined>)[flag];
      if (v === undefined) return undefined;
      if (!/^-?\d+$/.test(v)) throw new UsageError(`invalid argument "${v}" for "${label}" flag: strconv.ParseInt: parsing "${v}": invalid syntax`, 125);
      return Number(v);
    };
    let nano: number | undefined;
    if (values.cpus !== undefined) {
      const c = Number(values.cpus);
      if (!(c >= 0)) throw new UsageError(`invalid argument "${values.cpus}" for "--cpus" flag: failed to parse ${values.cpus} as a rational number`, 125);
      nano = Math.round(c * 1e9);
    }
    let restart: { Name: string; MaximumRetryCount: number } | undefined;
    if (values.restart !== undefined) {
      const [name, count] = values.restart.split(':');
      if (!['no', 'always', 'on-failure', 'unless-stopped'].includes(name) || (count !== undefined && !/^\d+$/.test(count))) {
        throw new UsageError(`invalid restart policy format: ${values.restart}`, 125);
      }
      restart = { Name: name, MaximumRetryCount: count ? Number(count) : 0 };
    }
    const body = {
      BlkioWeight: int('blkio-weight', '--blkio-weight'), CpuPeriod: int('cpu-period', '--cpu-period'), CpuQuota: int('cpu-quota', '--cpu-quota'),
      CpuShares: int('cpu-shares', '-c, --cpu-shares'), NanoCpus: nano, CpusetCpus: values['cpuset-cpus'], CpusetMems: values['cpuset-mems'],
      Memory: bytes('memory', '-m, --memory'), MemoryReservation: bytes('memory-reservation', '--memory-reservation'), MemorySwap: bytes('memory-swap', '--memory-swap'),
      PidsLimit: int('pids-limit', '--pids-limit'), RestartPolicy: restart,
    };
    if (Object.values(body).every((v) => v === undefined)) throw new CliError('you must provide one or more flags when using this command');
    let failed = false;
    for (const n of positionals) {
      try {
        const r = await ctx.client().json<{ Warnings: string[] | null }>('POST', `/containers/${enc(n)}/update`, { body });
        for (const w of r?.Warnings ?? []) ctx.io.err(`${w}\n`);
        ctx.io.out(`${n}\n`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        ctx.io.err(`Error response from daemon: ${e.message}\n`);
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },
};
