// 200 idle containers at once: `berth ps` latency (and the docker CLI's against
// the same daemon), the daemon's RSS growth, and the monitors' memory in total.
// Target: berth ps median under 150 ms.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH, DOCKER, Daemon, busyboxRootfs, importBusybox, fmt, main, procMemory, section, sleep, stats, table, tempDir, timeOk, verdict } from './lib.ts';

const COUNT = Number(process.env.BENCH_CONTAINERS ?? 200);
const N = Number(process.env.BENCH_N ?? 20);

await main(async () => {
  const dir = tempDir('scale');
  const rootfsTar = busyboxRootfs(dir);
  const d = await Daemon.start(dir);
  const env = d.env;
  await importBusybox(d, rootfsTar);
  await sleep(1000);
  const idle = procMemory(d.pid);
  const t0 = Date.now();
  for (let i = 0; i < COUNT; i++) await timeOk(BERTH, ['run', '-d', '--name', `idle${i}`, 'busybox', 'sleep', '3600'], { env });
  console.log(`containers-scale: started ${COUNT} idle containers in ${fmt((Date.now() - t0) / 1000)} s`);
  const running = (await timeOk(BERTH, ['ps', '-q'], { env })).stdout.split('\n').filter(Boolean).length;
  if (running !== COUNT) throw new Error(`berth ps lists ${running} running containers, expected ${COUNT}`);
  await sleep(1000);
  const loaded = procMemory(d.pid);

  const cases = [
    { name: 'berth ps', cmd: BERTH, args: ['ps'] },
    { name: 'docker ps (CLI → berthd)', cmd: DOCKER, args: ['ps'] },
  ];
  const samples = cases.map(() => [] as number[]);
  for (let i = 0; i < N + 2; i++) {
    for (const [j, c] of cases.entries()) {
      const t = await timeOk(c.cmd, c.args, { env });
      if (i >= 2) samples[j].push(t.ms);
    }
  }
  section(`ps with ${COUNT} running containers (${N} runs each)`);
  table(['command', 'min ms', 'median ms', 'max ms'], cases.map((c, j) => {
    const s = stats(samples[j]);
    return [c.name, fmt(s.min), fmt(s.median), fmt(s.max)];
  }));
  verdict(stats(samples[0]).median < 150, `berth ps median under 150 ms (${fmt(stats(samples[0]).median)} ms)`);

  section('memory');
  let monitors = 0;
  const runDir = join(d.dataRoot, 'run');
  for (const short of readdirSync(runDir)) {
    const pid = Number(readFileSync(join(runDir, short, 'monitor.pid'), 'utf8').trim());
    monitors += procMemory(pid).rss;
  }
  console.log(`berthd RSS: idle ${fmt(idle.rss)} MiB, with ${COUNT} containers ${fmt(loaded.rss)} MiB (+${fmt(loaded.rss - idle.rss)} MiB, ${fmt(((loaded.rss - idle.rss) * 1024) / COUNT)} KiB a container)`);
  console.log(`monitors: ${fmt(monitors)} MiB RSS in total, ${fmt((monitors * 1024) / COUNT)} KiB each (shared libc pages counted in each)`);
  const t1 = Date.now();
  await timeOk(BERTH, ['rm', '-f', ...Array.from({ length: COUNT }, (_, i) => `idle${i}`)], { env });
  console.log(`removed ${COUNT} containers in ${fmt((Date.now() - t1) / 1000)} s`);
});
