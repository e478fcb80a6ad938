import { humanSize } from '../../common/units.ts';
import { type Command, CliError, confirm, filtersParam, flags, inspectEach, keyValues, removeEach, requireArgs } from '../command.ts';
import { formatItems } from '../format/table.ts';

interface Volume {
  CreatedAt: string; Driver: string; Labels: Record<string, string> | null; Mountpoint: string; Name: string;
  Options: Record<string, string> | null; Scope: string; UsageData?: { Size: number; RefCount: number } | null;
}

const VOLUME_HEADERS = {
  Driver: 'DRIVER', Name: 'VOLUME NAME', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Links: 'LINKS', Size: 'SIZE',
  Group: 'GROUP', Availability: 'AVAILABILITY', Status: 'STATUS',
};

export const volumeCreate: Command = {
  usage: `Usage:  berth volume create [OPTIONS] [VOLUME]

Create a volume

Options:
  -d, --driver string   Specify volume driver name (default "local")
      --label list      Set metadata for a volume
  -o, --opt map         Set driver specific options (default map[])
`,
  description: 'Create a volume',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      driver: { type: 'string', short: 'd' }, label: { type: 'string', multiple: true }, opt: { type: 'string', short: 'o', multiple: true }, name: { type: 'string' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 1, this.usage);
    if (values.name && positionals.length) throw new CliError('conflicting options: cannot specify a volume-name through both --name and as a positional arg');
    const v = await ctx.client().json<Volume>('POST', '/volumes/create', {
      body: { Name: values.name ?? positionals[0] ?? '', Driver: values.driver ?? 'local', DriverOpts: keyValues(values.opt), Labels: keyValues(values.label) },
    });
    ctx.io.out(`${v.Name}\n`);
  },
};

export const volumeLs: Command = {
  usage: `Usage:  berth volume ls [OPTIONS]

List volumes

Aliases:
  berth volume ls, berth volume list

Options:
  -f, --filter filter   Provide filter values (e.g. "dangling=true")
      --format string   Format output using a custom template
  -q, --quiet           Only display volume names
`,
  description: 'List volumes',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      filter: { type: 'string', short: 'f', multiple: true }, format: { type: 'string' }, quiet: { type: 'boolean', short: 'q' }, cluster: { type: 'boolean' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const res = await ctx.client().json<{ Volumes: Volume[] | null }>('GET', '/volumes', { query: { filters: filtersParam(values.filter) } });
    const vols = [...(res.Volumes ?? [])].sort((a, b) => a.Name.localeCompare(b.Name, 'en', { numeric: true }));
    const rows = vols.map((v) => ({
      Availability: 'N/A', Driver: v.Driver, Group: 'N/A', Labels: Object.entries(v.Labels ?? {}).map(([k, val]) => `${k}=${val}`).join(','),
      Links: v.UsageData ? String(v.UsageData.RefCount) : 'N/A', Mountpoint: v.Mountpoint, Name: v.Name, Scope: v.Scope,
      Size: v.UsageData && v.UsageData.Size >= 0 ? humanSize(v.UsageData.Size) : 'N/A', Status: 'N/A',
    }));
    const format = values.quiet ? '{{.Name}}' : values.format && values.format !== 'table' ? values.format : 'table {{.Driver}}\t{{.Name}}';
    ctx.io.out(formatItems(format, rows, VOLUME_HEADERS));
  },
};

export const volumeInspect: Command = {
  usage: `Usage:  berth volume inspect [OPTIONS] VOLUME [VOLUME...]

Display detailed information on one or more volumes

Options:
  -f, --format string   Format output using a custom template
`,
  description: 'Display detailed information on one or more volumes',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { format: { type: 'string', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    return inspectEach(ctx, positionals, (n) => `/volumes/${n}`, values.format);
  },
};

export const volumeRm: Command = {
  usage: `Usage:  berth volume rm [OPTIONS] VOLUME [VOLUME...]

Remove one or more volumes. You cannot remove a volume that is in use by a container.

Aliases:
  berth volume rm, berth volume remove

Options:
  -f, --force   Force the removal of one or more volumes
`,
  description: 'Remove one or more volumes',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { force: { type: 'boolean', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    return removeEach(ctx, positionals, (n) => `/volumes/${n}`, { query: { force: values.force || undefined } });
  },
};

export const volumePrune: Command = {
  usage: `Usage:  berth volume prune [OPTIONS]

Remove unused local volumes

Options:
  -a, --all             Remove all unused volumes, not just anonymous ones
      --filter filter   Provide filter values (e.g. "label=<label>")
  -f, --force           Do not prompt for confirmation
`,
  description: 'Remove unused local volumes',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { all: { type: 'boolean', short: 'a' }, filter: { type: 'string', multiple: true }, force: { type: 'boolean', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const warning = values.all
      ? 'WARNING! This will remove all local volumes not used by at least one container.'
      : 'WARNING! This will remove anonymous local volumes not used by at least one container.';
    if (!values.force && !(await confirm(ctx.io, `${warning}\nAre you sure you want to continue?`))) return 0;
    const f = [...(values.filter ?? [])];
    if (values.all) f.push('all=true');
    const res = await ctx.client().json<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }>('POST', '/volumes/prune', { query: { filters: filtersParam(f) } });
    if (res.VolumesDeleted?.length) ctx.io.out(`Deleted Volumes:\n${res.VolumesDeleted.join('\n')}\n\n`);
    ctx.io.out(`Total reclaimed space: ${humanSize(res.SpaceReclaimed ?? 0)}\n`);
  },
};
