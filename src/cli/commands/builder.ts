// `berth builder prune` and `berth builder du`: the build cache.
import { humanSize } from '../../common/units.ts';
import { type Command, confirm, filtersParam, flags, requireArgs } from '../command.ts';

interface CacheRecord { ID: string; Description: string; Size: number; LastUsedAt: string; UsageCount: number; InUse: boolean; Shared: boolean }

export const builderPrune: Command = {
  usage: `Usage:  berth builder prune

Remove build cache

Options:
  -a, --all                  Remove all unused build cache, not just dangling ones
      --filter filter        Provide filter values (e.g. "until=24h")
  -f, --force                Do not prompt for confirmation
      --keep-storage bytes   Amount of disk space to keep for cache
`,
  description: 'Remove build cache',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      all: { type: 'boolean', short: 'a' }, filter: { type: 'string', multiple: true }, force: { type: 'boolean', short: 'f' },
      'keep-storage': { type: 'string' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const warning = values.all
      ? 'WARNING! This will remove all build cache. Are you sure you want to continue?'
      : 'WARNING! This will remove all dangling build cache. Are you sure you want to continue?';
    if (!values.force && !(await confirm(ctx.io, warning))) return;
    const r = await ctx.client().json<{ CachesDeleted: string[] | null; SpaceReclaimed: number }>('POST', '/build/prune', {
      query: { all: values.all, filters: filtersParam(values.filter), 'keep-storage': values['keep-storage'] },
    });
    if (r.CachesDeleted?.length) ctx.io.out(`ID\tRECLAIMABLE\tSIZE\tLAST ACCESSED\n${r.CachesDeleted.map((id) => `${id.slice(0, 25)}\n`).join('')}`);
    ctx.io.out(`Total:\t${humanSize(r.SpaceReclaimed)}\n`);
  },
};

export const builderDu: Command = {
  usage: `Usage:  berth builder du

Disk usage of the build cache
`,
  description: 'Disk usage of the build cache',
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const df = await ctx.client().json<{ BuildCache: CacheRecord[] | null }>('GET', '/system/df', { query: { type: 'build-cache' } });
    const recs = df.BuildCache ?? [];
    const rows = recs.map((r) => `${r.ID.padEnd(27)}${String(r.InUse).padEnd(12)}${humanSize(r.Size).padEnd(12)}${r.Description.slice(0, 60)}\n`);
    ctx.io.out(`${'ID'.padEnd(27)}${'RECLAIMABLE'.padEnd(12)}${'SIZE'.padEnd(12)}DESCRIPTION\n${rows.join('')}`);
    ctx.io.out(`Total:\t${humanSize(recs.reduce((n, r) => n + r.Size, 0))}\n`);
  },
};
