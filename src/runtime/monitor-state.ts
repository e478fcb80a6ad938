import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Whether the berth-monitor that owns a state directory (a container's or an exec's) is still running. */
export async function monitorAlive(stateDir: string): Promise<boolean> {
  const pid = Number((await readFile(join(stateDir, 'monitor.pid'), 'utf8').catch(() => '')).trim());
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
