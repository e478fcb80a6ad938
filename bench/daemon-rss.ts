// berthd's resident memory: idle 2 s after start on an empty data root, and
// again after loading 1,000 images and listing them. Peers in the same run: an
// idle bare Node process (the floor of any Node daemon), and dockerd +
// containerd when their binaries are on this machine. Target: idle < 60 MiB.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH, DOCKER, Daemon, NODE24, fmt, main, onCleanup, procMemory, section, sleep, stats, table, tempDir, timeOk, verdict } from './lib.ts';
import { MANY_IMAGES, writeManyImagesArchive } from './fixtures.ts';

const RUNS = Number(process.env.BENCH_N ?? 3);
const SETTLE_MS = 2000;
const TARGET_MIB = 60;
/** dockerd + containerd idle RSS, the reference figure when they are not installed here. */
const DOCKER_REFERENCE_MIB = 125;

interface Sample { rss: number; hwm: number }

const mem = (pid: number): Sample => procMemory(pid);

/** An idle bare Node process (same binary and flags as berthd, nothing loaded). */
async function nodeFloor(): Promise<Sample> {
  const p = spawn(NODE24, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  onCleanup(() => { try { p.kill('SIGKILL'); } catch { /* gone */ } });
  await sleep(SETTLE_MS);
  const m = mem(p.pid!);
  p.kill('SIGTERM');
  await new Promise((r) => p.once('exit', r));
  return m;
}

const which = (bin: string): string | undefined =>
  (process.env.PATH ?? '').split(':').map((d) => join(d, bin)).find((p) => existsSync(p));

/**
 * dockerd with its own containerd, each on private state in `dir`, with
 * networking features off, measured 2 s after the API answers. Nothing is
 * pulled; no registry is contacted.
 */
async function measureDocker(dir: string): Promise<{ dockerd: Sample; containerd: Sample } | string> {
  const dockerd = which('dockerd');
  const containerd = which('containerd');
  if (!dockerd || !containerd) return `not measured here (${[!dockerd && 'dockerd', !containerd && 'containerd'].filter(Boolean).join(' and ')} not installed)`;
  const root = join(dir, 'docker');
  mkdirSync(root, { recursive: true });
  const csock = join(root, 'containerd.sock');
  const c = spawn(containerd, ['--root', join(root, 'c-root'), '--state', join(root, 'c-state'), '--address', csock], { stdio: 'ignore' });
  onCleanup(() => { try { c.kill('SIGKILL'); } catch { /* gone */ } });
  const dsock = join(root, 'docker.sock');
  const d = spawn(dockerd, [
    '--data-root', join(root, 'd-root'), '--exec-root', join(root, 'd-exec'), '--pidfile', join(root, 'dockerd.pid'),
    '-H', `unix://${dsock}`, '--containerd', csock, '--iptables=false', '--ip6tables=false', '--bridge=none',
  ], { stdio: 'ignore' });
  onCleanup(() => { try { d.kill('SIGKILL'); } catch { /* gone */ } });
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await timeOkQuiet(DOCKER, ['version'], { DOCKER_HOST: `unix://${dsock}`, DOCKER_CONFIG: join(root, 'cfg') });
      if (r) break;
      if (Date.now() > deadline || d.exitCode !== null || c.exitCode !== null) return 'dockerd did not start here; not measured';
      await sleep(200);
    }
    await sleep(SETTLE_MS);
    return { dockerd: mem(d.pid!), containerd: mem(c.pid!) };
  } finally {
    for (const p of [d, c]) {
      p.kill('SIGTERM');
      await Promise.race([new Promise((r) => p.once('exit', r)), sleep(10_000)]);
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    }
  }
}

async function timeOkQuiet(cmd: string, args: string[], env: Record<string, string>): Promise<boolean> {
  try {
    await timeOk(cmd, args, { env });
    return true;
  } catch {
    return false;
  }
}

await main(async () => {
  const dir = tempDir('rss');
  console.log(`daemon-rss: VmRSS and VmHWM from /proc/PID/status, ${SETTLE_MS / 1000} s after start; ${RUNS} fresh daemons; 1 MiB = 1024 kB`);

  // Warm-up: one start and one load, discarded, so Node's compile cache (see
  // bin/node24) holds every module the measured runs load.
  const archive = join(dir, 'many.tar');
  await writeManyImagesArchive(archive);
  {
    const d = await Daemon.start(join(dir, 'warm-up'));
    await timeOk(BERTH, ['load', '-q', '-i', archive], { env: d.env });
    await timeOk(BERTH, ['image', 'ls'], { env: d.env });
    await d.stop();
  }

  // Idle, empty data root: a fresh daemon and data root per run.
  const idle: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    const d = await Daemon.start(join(dir, `idle-${i}`));
    await sleep(SETTLE_MS);
    idle.push(mem(d.pid));
    await d.stop();
  }
  const floors: Sample[] = [];
  for (let i = 0; i < RUNS; i++) floors.push(await nodeFloor());

  // Informational: the same idle daemon with an empty compile cache, as on the
  // first start after an install or upgrade (Node then strips the types itself).
  let cold: Sample;
  {
    const d = await Daemon.start(join(dir, 'cold'), { env: { NODE_COMPILE_CACHE: join(dir, 'cold', 'compile-cache') } });
    await sleep(SETTLE_MS);
    cold = mem(d.pid);
    await d.stop();
  }

  // Loaded: 1,000 images in one archive, then listings through both CLIs.
  const loaded: Sample[] = [];
  const listed: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    const d = await Daemon.start(join(dir, `loaded-${i}`));
    await sleep(SETTLE_MS);
    await timeOk(BERTH, ['load', '-q', '-i', archive], { env: d.env });
    await sleep(SETTLE_MS);
    loaded.push(mem(d.pid));
    const q = await timeOk(BERTH, ['images', '-q'], { env: d.env });
    const count = q.stdout.split('\n').filter(Boolean).length;
    if (count !== MANY_IMAGES) throw new Error(`berth images -q listed ${count} images, expected ${MANY_IMAGES}`);
    for (let k = 0; k < 5; k++) {
      await timeOk(BERTH, ['image', 'ls'], { env: d.env });
      await timeOk(DOCKER, ['image', 'ls'], { env: d.env });
    }
    await sleep(SETTLE_MS);
    listed.push(mem(d.pid));
    await d.stop();
  }

  const docker = await measureDocker(dir);

  const row = (name: string, xs: Sample[]) => {
    const r = stats(xs.map((x) => x.rss));
    const h = stats(xs.map((x) => x.hwm));
    return [name, fmt(r.min), fmt(r.median), fmt(r.max), fmt(h.median)];
  };
  section('results (MiB)');
  const rows = [
    row('berthd idle, empty root', idle),
    row(`berthd after load of ${MANY_IMAGES} images`, loaded),
    row('berthd after 5x image ls (berth+docker)', listed),
    row('berthd idle, cold compile cache (info)', [cold]),
    row('bare node24, idle (floor)', floors),
  ];
  if (typeof docker !== 'string') {
    rows.push(row('dockerd idle', [docker.dockerd]), row('containerd idle', [docker.containerd]));
    rows.push(row('dockerd + containerd idle', [{ rss: docker.dockerd.rss + docker.containerd.rss, hwm: docker.dockerd.hwm + docker.containerd.hwm }]));
  }
  table(['process', 'RSS min', 'RSS median', 'RSS max', 'HWM median'], rows);

  const idleMed = stats(idle.map((x) => x.rss)).median;
  const floorMed = stats(floors.map((x) => x.rss)).median;
  const listedMed = stats(listed.map((x) => x.rss)).median;
  console.log(`berthd idle over the bare-node floor: +${fmt(idleMed - floorMed)} MiB (${fmt(idleMed / floorMed, 2)}x the floor)`);
  console.log(`growth from ${MANY_IMAGES} images loaded and listed: +${fmt(listedMed - idleMed)} MiB`);
  if (typeof docker === 'string') {
    console.log(`dockerd + containerd: ${docker}; reference figure ~${DOCKER_REFERENCE_MIB} MiB idle (not measured here): berthd idle is ${fmt(idleMed / DOCKER_REFERENCE_MIB, 2)}x of it`);
  } else {
    const both = docker.dockerd.rss + docker.containerd.rss;
    console.log(`dockerd + containerd measured here: ${fmt(both)} MiB idle; berthd idle is ${fmt(idleMed / both, 2)}x of it`);
  }

  section('targets');
  verdict(idleMed < TARGET_MIB, `berthd idle RSS: median ${fmt(idleMed)} MiB = ${fmt(idleMed * 1.048576)} MB (target < ${TARGET_MIB} MiB, counted as /proc and ps count)`);
});
