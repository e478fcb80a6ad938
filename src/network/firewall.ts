/**
 * berth's iptables rules. Each daemon owns a handful of chains named after
 * its default bridge, so two daemons side by side never touch each other's
 * rules. The chains' contents are always rendered whole from the daemon's
 * records and loaded with one `iptables-restore --noflush`, which replaces
 * just those chains atomically: there is no rule to forget to delete, and a
 * daemon that died mid-change writes the truth again when it starts.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface FirewallNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
}

export interface FirewallPort {
  proto: 'tcp' | 'udp' | 'sctp';
  /** '0.0.0.0' publishes on every host address, loopback included. */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export interface FirewallState {
  networks: readonly FirewallNetwork[];
  ports: readonly FirewallPort[];
}

export interface Chains {
  /** nat: published ports' DNAT, for traffic to a local address (from outside, or from the host itself). */
  dnat: string;
  /** nat: masquerade out of the container networks, and of loopback clients into them. */
  post: string;
  /** filter: what may cross the container networks' bridges. */
  forward: string;
  /** filter: drops traffic from one berth network into another. */
  isolation: string;
}

/** Chain names for the daemon whose default bridge is `bridge` (iptables allows 28 characters). */
export function chainsFor(bridge: string): Chains {
  const tag = bridge === 'berth0' ? 'BERTH' : `BERTH-${bridge}`.slice(0, 24);
  return { dnat: tag, post: `${tag}-POST`, forward: `${tag}-FWD`, isolation: `${tag}-ISO` };
}

/** Where each chain is jumped to from: [table, built-in chain, match, insert at the top]. */
export function jumpRules(c: Chains): [string, string, string[], boolean][] {
  return [
    ['nat', 'PREROUTING', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat], false],
    ['nat', 'OUTPUT', ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat], false],
    ['nat', 'POSTROUTING', ['-j', c.post], false],
    ['filter', 'FORWARD', ['-j', c.forward], true],
  ];
}

export type Table = 'nat' | 'filter';

/**
 * The restore text for berth's chains holding exactly `state`. Published
 * ports live in nat alone, so a container's ports reload just that table
 * (about a third of the time of both with iptables-nft).
 */
export function render(c: Chains, state: FirewallState, tables: ReadonlySet<Table> = new Set(['nat', 'filter'])): string {
  const nat = [`*nat`, `:${c.dnat} - [0:0]`, `:${c.post} - [0:0]`];
  for (const p of state.ports) {
    const dst = p.hostIp === '0.0.0.0' ? '' : `-d ${p.hostIp}/32 `;
    nat.push(`-A ${c.dnat} ${dst}-p ${p.proto} -m ${p.proto} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`);
  }
  for (const n of state.networks) {
    if (!n.internal) nat.push(`-A ${c.post} -s ${n.subnet} ! -o ${n.bridge} -j MASQUERADE`);
    // A client on 127.0.0.1 reaches a published port only if the container answers to an address it can route back to.
    nat.push(`-A ${c.post} -s 127.0.0.0/8 -o ${n.bridge} -j MASQUERADE`);
  }
  for (const p of state.ports) {
    // Hairpin: a container reaching its own published port through the host.
    nat.push(`-A ${c.post} -s ${p.containerIp}/32 -d ${p.containerIp}/32 -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j MASQUERADE`);
  }
  nat.push('COMMIT');
  if (!tables.has('filter')) return `${nat.join('\n')}\n`;
  const filter = ['*filter', `:${c.forward} - [0:0]`, `:${c.isolation} - [0:0]`];
  for (const n of state.networks) filter.push(`-A ${c.forward} -i ${n.bridge} ! -o ${n.bridge} -j ${c.isolation}`);
  for (const n of state.networks) filter.push(`-A ${c.isolation} -o ${n.bridge} -j DROP`);
  for (const n of state.networks) {
    if (n.internal) {
      filter.push(`-A ${c.forward} -i ${n.bridge} ! -o ${n.bridge} -j DROP`, `-A ${c.forward} -o ${n.bridge} ! -i ${n.bridge} -j DROP`);
    }
    filter.push(
      `-A ${c.forward} -o ${n.bridge} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A ${c.forward} -o ${n.bridge} -m conntrack --ctstate DNAT -j ACCEPT`,
      `-A ${c.forward} -i ${n.bridge} -j ACCEPT`,
    );
  }
  filter.push('COMMIT');
  return tables.has('nat') ? `${nat.join('\n')}\n${filter.join('\n')}\n` : `${filter.join('\n')}\n`;
}

function restore(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('iptables-restore', ['--noflush', '-w'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b) => (err += b));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`iptables-restore: ${err.trim() || `exit ${code}`}`))));
    child.stdin.end(text);
  });
}

async function iptables(table: string, args: string[]): Promise<boolean> {
  try {
    await exec('iptables', ['-w', '-t', table, ...args]);
    return true;
  } catch {
    return false;
  }
}

/** Loads rule sets one at a time; a change asked for while one loads is folded into the next load. */
export class Firewall {
  readonly chains: Chains;
  #state: () => FirewallState;
  #running: Promise<void> = Promise.resolve();
  #queued: Promise<void> | undefined;
  #wanted = new Set<Table>();

  /** `state` is read when a load runs, so the newest records always win. */
  constructor(bridge: string, state: () => FirewallState) {
    this.chains = chainsFor(bridge);
    this.#state = state;
  }

  /** Makes the chains, loads the current rules, then hooks the chains into the built-in ones. */
  async init(): Promise<void> {
    await restore(render(this.chains, this.#state()));
    for (const [table, chain, rule, top] of jumpRules(this.chains)) {
      if (!(await iptables(table, ['-C', chain, ...rule]))) {
        if (!(await iptables(table, top ? ['-I', chain, '1', ...rule] : ['-A', chain, ...rule]))) {
          throw new Error(`iptables: cannot add the jump to ${this.chains.dnat} chains in ${table} ${chain}`);
        }
      }
    }
  }

  /** Reloads berth's chains in `tables` (both by default; published ports need only nat). */
  sync(tables: readonly Table[] = ['nat', 'filter']): Promise<void> {
    for (const t of tables) this.#wanted.add(t);
    if (this.#queued) return this.#queued;
    const next = this.#running.catch(() => {}).then(() => {
      this.#queued = undefined;
      const wanted = this.#wanted;
      this.#wanted = new Set();
      return restore(render(this.chains, this.#state(), wanted));
    });
    this.#queued = next;
    this.#running = next;
    return next;
  }
}
