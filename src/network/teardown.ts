/**
 * Takes a stopped daemon's networking off the host: the jumps into its
 * iptables chains, the chains, and its bridges. berthd itself leaves them
 * when it stops (as dockerd does, so a restart finds containers reachable);
 * this is for test and benchmark daemons, and for uninstalling.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { chainsFor, jumpRules } from './firewall.ts';

export function removeDaemonNetworking(defaultBridge: string, dataRoot: string): void {
  const bridges = new Set([defaultBridge]);
  const dbPath = join(dataRoot, 'berth.db');
  if (existsSync(dbPath)) {
    const db = new DatabaseSync(dbPath, { readOnly: true });
    try {
      for (const r of db.prepare("SELECT bridge FROM networks WHERE driver = 'bridge'").all() as { bridge: string }[]) bridges.add(r.bridge);
    } catch { /* a database from before networks: only the default bridge */ }
    db.close();
  }
  const c = chainsFor(defaultBridge);
  for (const [table, chain, rule] of jumpRules(c)) while (spawnSync('iptables', ['-w', '-t', table, '-D', chain, ...rule]).status === 0);
  for (const [table, chain] of [['nat', c.dnat], ['nat', c.post], ['filter', c.forward], ['filter', c.isolation]]) {
    spawnSync('iptables', ['-w', '-t', table, '-F', chain]);
    spawnSync('iptables', ['-w', '-t', table, '-X', chain]);
  }
  for (const b of bridges) if (existsSync(`/sys/class/net/${b}`)) spawnSync('ip', ['link', 'del', b]);
}
