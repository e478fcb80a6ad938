import { goTime } from '../../common/units.ts';
import { type Command, CliError, confirm, filtersParam, flags, inspectEach, keyValues, removeEach, requireArgs } from '../command.ts';
import { formatItems } from '../format/table.ts';
import { naturalLess, parseIP } from '../ports.ts';

interface Network {
  Name: string; Id: string; Created: string; Scope: string; Driver: string; EnableIPv4?: boolean; EnableIPv6: boolean;
  Internal: boolean; Attachable: boolean; Labels: Record<string, string> | null; Options: Record<string, string> | null;
}

const NETWORK_HEADERS = {
  ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv4: 'IPV4', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', CreatedAt: 'CREATED AT',
};

/** pflag's `strings` flags: each value may hold several, comma-separated. */
function strings(list: string[] | undefined): string[] {
  return (list ?? []).flatMap((s) => s.split(',')).filter((s) => s !== '');
}

/** Go's net.ParseCIDR, as the address written and the network it names. */
function parseCIDR(s: string): { ip: { bits: number; value: bigint }; net: { bits: number; value: bigint; prefix: number } } {
  const i = s.indexOf('/');
  const ip = i < 0 ? undefined : parseIP(s.slice(0, i));
  const len = s.slice(i + 1);
  if (!ip || !/^\d{1,3}$/.test(len) || Number(len) > ip.bits) throw new CliError(`invalid CIDR address: ${s}`);
  const prefix = Number(len);
  const mask = ((1n << BigInt(ip.bits)) - 1n) ^ ((1n << BigInt(ip.bits - prefix)) - 1n);
  return { ip, net: { bits: ip.bits, value: ip.value & mask, prefix } };
}

/** docker's subnetMatches: whether `data` (an address, or a CIDR's address) lies in `subnet`. */
function subnetMatches(subnet: string, data: string): boolean {
  let s;
  try {
    s = parseCIDR(subnet).net;
  } catch (e) {
    throw new CliError(`invalid subnet: ${(e as Error).message}`);
  }
  const ip = data.includes('/') ? parseCIDR(data).ip : parseIP(data);
  if (!ip || ip.bits !== s.bits) return false;
  const shift = BigInt(s.bits - s.prefix);
  return ip.value >> shift === s.value >> shift;
}

interface IpamConfig { Subnet?: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }

/** docker's createIPAMConfig: each --ip-range, --gateway and --aux-address joins the --subnet it falls in. */
export function ipamConfig(subnets: string[], ranges: string[], gateways: string[], aux: Record<string, string>): IpamConfig[] {
  if (subnets.length < ranges.length || subnets.length < gateways.length) throw new CliError('every ip-range or gateway must have a corresponding subnet');
  const data = new Map<string, IpamConfig>();
  for (const s of subnets) {
    for (const k of data.keys()) {
      if (subnetMatches(s, k) || subnetMatches(k, s)) throw new CliError('multiple overlapping subnet configuration is not supported');
    }
    data.set(s, { Subnet: s });
  }
  const assign = (value: string, field: 'IPRange' | 'Gateway', what: string, multiple: string): void => {
    let match = false;
    for (const s of subnets) {
      if (!subnetMatches(s, value)) continue;
      const d = data.get(s)!;
      if (d[field]) throw new CliError(`cannot configure multiple ${multiple} (${value}, ${d[field]}) ${field === 'IPRange' ? 'on' : 'for'} the same subnet (${s})`);
      d[field] = value;
      match = true;
    }
    if (!match) throw new CliError(`no matching subnet for ${what} ${value}`);
  };
  for (const r of ranges) assign(r, 'IPRange', 'range', 'ranges');
  for (const g of gateways) assign(g, 'Gateway', 'gateway', 'gateways');
  for (const [key, a] of Object.entries(aux)) {
    let match = false;
    for (const s of subnets) {
      if (!subnetMatches(s, a)) continue;
      const d = data.get(s)!;
      d.AuxiliaryAddresses = { ...d.AuxiliaryAddresses, [key]: a };
      match = true;
    }
    if (!match) throw new CliError(`no matching subnet for aux-address ${a}`);
  }
  return [...data.values()];
}

export const networkCreate: Command = {
  usage: `Usage:  berth network create [OPTIONS] NETWORK

Create a network

Options:
      --attachable           Enable manual container attachment
      --aux-address map      Auxiliary IPv4 or IPv6 addresses used by Network driver (default map[])
  -d, --driver string        Driver to manage the Network (default "bridge")
      --gateway strings      IPv4 or IPv6 Gateway for the master subnet
      --internal             Restrict external access to the network
      --ip-range strings     Allocate container ip from a sub-range
      --ipam-driver string   IP Address Management Driver (default "default")
      --ipam-opt map         Set IPAM driver specific options (default map[])
      --ipv6                 Enable or disable IPv6 address assignment
      --label list           Set metadata on a network
  -o, --opt map              Set driver specific options (default map[])
      --scope string         Control the network's scope
      --subnet strings       Subnet in CIDR format that represents a network segment
`,
  description: 'Create a network',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      attachable: { type: 'boolean' }, 'aux-address': { type: 'string', multiple: true }, driver: { type: 'string', short: 'd' },
      gateway: { type: 'string', multiple: true }, internal: { type: 'boolean' }, 'ip-range': { type: 'string', multiple: true },
      'ipam-driver': { type: 'string' }, 'ipam-opt': { type: 'string', multiple: true }, ipv6: { type: 'boolean' },
      label: { type: 'string', multiple: true }, opt: { type: 'string', short: 'o', multiple: true }, scope: { type: 'string' },
      subnet: { type: 'string', multiple: true },
    }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const config = ipamConfig(strings(values.subnet), strings(values['ip-range']), strings(values.gateway), keyValues(values['aux-address']));
    const res = await ctx.client().json<{ Id: string; Warning?: string }>('POST', '/networks/create', {
      body: {
        Name: positionals[0], Driver: values.driver ?? 'bridge', Scope: values.scope, Internal: Boolean(values.internal), Attachable: Boolean(values.attachable),
        EnableIPv6: Boolean(values.ipv6), Labels: keyValues(values.label), Options: keyValues(values.opt),
        IPAM: { Driver: values['ipam-driver'] ?? 'default', Config: config, Options: keyValues(values['ipam-opt']) },
      },
    });
    if (res.Warning) ctx.io.err(`WARNING: ${res.Warning}\n`);
    ctx.io.out(`${res.Id}\n`);
  },
};

export const networkLs: Command = {
  usage: `Usage:  berth network ls [OPTIONS]

List networks

Aliases:
  berth network ls, berth network list

Options:
  -f, --filter filter   Provide filter values (e.g. "driver=bridge")
      --format string   Format output using a custom template
      --no-trunc        Do not truncate the output
  -q, --quiet           Only display network IDs
`,
  description: 'List networks',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      filter: { type: 'string', short: 'f', multiple: true }, format: { type: 'string' }, 'no-trunc': { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const list = await ctx.client().json<Network[]>('GET', '/networks', { query: { filters: filtersParam(values.filter) } });
    const nets = [...list].sort((a, b) => (naturalLess(a.Name, b.Name) ? -1 : naturalLess(b.Name, a.Name) ? 1 : 0));
    const rows = nets.map((n) => {
      const created = Date.parse(n.Created);
      return {
        ID: values['no-trunc'] ? n.Id : n.Id.slice(0, 12), Name: n.Name, Driver: n.Driver, Scope: n.Scope,
        IPv4: String(n.EnableIPv4 ?? true), IPv6: String(Boolean(n.EnableIPv6)), Internal: String(Boolean(n.Internal)),
        Labels: Object.entries(n.Labels ?? {}).map(([k, v]) => `${k}=${v}`).join(','),
        CreatedAt: Number.isNaN(created) ? '' : goTime(created),
        Label: (name: unknown) => (n.Labels ?? {})[String(name)] ?? '',
      };
    });
    const format = values.quiet ? '{{.ID}}' : values.format && values.format !== 'table' ? values.format : 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}';
    ctx.io.out(formatItems(format, rows, NETWORK_HEADERS));
  },
};

export const networkInspect: Command = {
  usage: `Usage:  berth network inspect [OPTIONS] NETWORK [NETWORK...]

Display detailed information on one or more networks

Options:
  -f, --format string   Format output using a custom template
  -v, --verbose         Verbose output for diagnostics
`,
  description: 'Display detailed information on one or more networks',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { format: { type: 'string', short: 'f' }, verbose: { type: 'boolean', short: 'v' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    return inspectEach(ctx, positionals, (n) => `/networks/${n}`, values.format, { verbose: values.verbose || undefined });
  },
};

export const networkRm: Command = {
  usage: `Usage:  berth network rm NETWORK [NETWORK...]

Remove one or more networks

Aliases:
  berth network rm, berth network remove

Options:
  -f, --force   Do not error if the network does not exist
`,
  description: 'Remove one or more networks',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { force: { type: 'boolean', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    return removeEach(ctx, positionals, (n) => `/networks/${n}`, { ignore: (e) => Boolean(values.force) && e.status === 404 });
  },
};

export const networkPrune: Command = {
  usage: `Usage:  berth network prune [OPTIONS]

Remove all unused networks

Options:
      --filter filter   Provide filter values (e.g. "until=<timestamp>")
  -f, --force           Do not prompt for confirmation
`,
  description: 'Remove all unused networks',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { filter: { type: 'string', multiple: true }, force: { type: 'boolean', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const warning = 'WARNING! This will remove all custom networks not used by at least one container.';
    if (!values.force && !(await confirm(ctx.io, `${warning}\nAre you sure you want to continue?`))) return 0;
    const res = await ctx.client().json<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune', { query: { filters: filtersParam(values.filter) } });
    if (res.NetworksDeleted?.length) ctx.io.out(`Deleted Networks:\n${res.NetworksDeleted.join('\n')}\n\n`);
  },
};

export const networkConnect: Command = {
  usage: `Usage:  berth network connect [OPTIONS] NETWORK CONTAINER

Connect a container to a network

Options:
      --alias strings           Add network-scoped alias for the container
      --driver-opt strings      driver options for the network
      --ip string               IPv4 address (e.g., "172.30.100.104")
      --ip6 string              IPv6 address (e.g., "2001:db8::33")
      --link list               Add link to another container
      --link-local-ip strings   Add a link-local address for the container
`,
  description: 'Connect a container to a network',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      alias: { type: 'string', multiple: true }, 'driver-opt': { type: 'string', multiple: true }, ip: { type: 'string' }, ip6: { type: 'string' },
      link: { type: 'string', multiple: true }, 'link-local-ip': { type: 'string', multiple: true },
    }, this.usage);
    requireArgs(ctx, positionals, 2, 2, this.usage);
    const [net, container] = positionals;
    const aliases = strings(values.alias);
    const linkLocal = strings(values['link-local-ip']);
    const driverOpts = keyValues(strings(values['driver-opt']));
    const body = {
      Container: container,
      EndpointConfig: {
        IPAMConfig: { IPv4Address: values.ip || undefined, IPv6Address: values.ip6 || undefined, LinkLocalIPs: linkLocal.length ? linkLocal : undefined },
        Links: values.link?.length ? values.link : null, Aliases: aliases.length ? aliases : null,
        DriverOpts: Object.keys(driverOpts).length ? driverOpts : null,
      },
    };
    await ctx.client().request('POST', `/networks/${encodeURIComponent(net)}/connect`, { body }).then((r) => r.resume());
  },
};

export const networkDisconnect: Command = {
  usage: `Usage:  berth network disconnect [OPTIONS] NETWORK CONTAINER

Disconnect a container from a network

Options:
  -f, --force   Force the container to disconnect from a network
`,
  description: 'Disconnect a container from a network',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { force: { type: 'boolean', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 2, 2, this.usage);
    const [net, container] = positionals;
    await ctx.client().request('POST', `/networks/${encodeURIComponent(net)}/disconnect`, { body: { Container: container, Force: Boolean(values.force) } })
      .then((r) => r.resume());
  },
};
