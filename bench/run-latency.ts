// `berth run --rm busybox true` against the floor of raw `runc run` on a
// prepared bundle, and the real docker CLI against the same berthd, in one run,
// interleaved. Also the monitor's RSS for one running container.
// Targets: berth at most 3x the runc floor; monitor under 3 MB.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH, DOCKER, Daemon, busyboxRootfs, importBusybox, fmt, main, procMemory, section, startDockerEngine, stats, table, tempDir, timeOk, verdict } from './lib.ts';

const N = Number(process.env.BENCH_N ?? 20);
const WARMUP = 3;

await main(async () => {
  const dir = tempDir('run');
  const rootfsTar = busyboxRootfs(dir);

  // The floor: runc alone on a bundle prepared once (rootfs extracted, runc's default spec running `true`).
  const bundle = join(dir, 'bundle');
  mkdirSync(join(bundle, 'rootfs'), { recursive: true });
  execFileSync('tar', ['-C', join(bundle, 'rootfs'), '-xf', rootfsTar]);
  execFileSync('runc', ['spec'], { cwd: bundle });
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  spec.process.terminal = false;
  spec.process.args = ['true'];
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(spec));
  const runcRoot = join(dir, 'runc-root');
  let n = 0;

  const d = await Daemon.start(dir);
  const env = d.env;
  await importBusybox(d, rootfsTar);

  // A second floor: runc alone on berth's own spec (seccomp, masked paths, its mounts), the same
  // rootfs. runc's default spec has no seccomp profile, and compiling Docker's costs runc ~10 ms.
  const probe = (await timeOk(BERTH, ['run', '-d', 'busybox', 'sleep', '30'], { env })).stdout.trim();
  const berthSpec = JSON.parse(readFileSync(join(d.dataRoot, 'containers', probe, 'config.json'), 'utf8'));
  await timeOk(BERTH, ['rm', '-f', probe], { env });
  berthSpec.root = { path: join(bundle, 'rootfs'), readonly: false };
  berthSpec.process.args = ['true'];
  berthSpec.mounts = berthSpec.mounts.filter((m: { source: string }) => !m.source.startsWith(d.dataRoot));
  berthSpec.linux.cgroupsPath = `/berth-bench/${process.pid}`;
  const bundle2 = join(dir, 'bundle-berth-spec');
  mkdirSync(bundle2);
  writeFileSync(join(bundle2, 'config.json'), JSON.stringify(berthSpec));
  console.log(`run-latency: ${N} runs each after ${WARMUP} warm-up runs, interleaved; wall time from spawn to exit`);

  // A Docker engine beside it, where docker.io is installed; both run with --network none for that comparison.
  const engine = await startDockerEngine(dir);
  if (engine) {
    const tar = join(dir, 'busybox-image.tar');
    await timeOk(BERTH, ['save', '-o', tar, 'busybox:latest'], { env });
    await timeOk(DOCKER, ['load', '-i', tar], { env: engine.env });
  }
  const cases = [
    { name: 'runc run (floor)', run: () => timeOk('runc', ['--root', runcRoot, 'run', '--bundle', bundle, `floor-${n++}`], { stdio: 'ignore' }) },
    { name: "runc run, berth's spec", run: () => timeOk('runc', ['--root', runcRoot, 'run', '--bundle', bundle2, `spec-${n++}`], { stdio: 'ignore' }) },
    { name: 'berth run --rm true', run: () => timeOk(BERTH, ['run', '--rm', 'busybox', 'true'], { env }) },
    { name: 'docker run --rm true (CLI → berthd)', run: () => timeOk(DOCKER, ['run', '--rm', 'busybox', 'true'], { env }) },
    { name: 'berth run --rm --network none true', run: () => timeOk(BERTH, ['run', '--rm', '--network', 'none', 'busybox', 'true'], { env }) },
    ...(engine ? [{
      name: `docker run --rm --network none true (Docker ${engine.version})`,
      run: () => timeOk(DOCKER, ['run', '--rm', '--network', 'none', '--pull', 'never', 'busybox', 'true'], { env: engine.env }),
    }] : []),
  ];
  const samples = cases.map(() => [] as number[]);
  for (let i = 0; i < WARMUP + N; i++) {
    for (const [j, c] of cases.entries()) {
      const t = await c.run();
      if (i >= WARMUP) samples[j].push(t.ms);
    }
  }
  const floor = stats(samples[0]).median;
  section('run --rm true');
  table(['command', 'min ms', 'median ms', 'max ms', 'x floor'], cases.map((c, j) => {
    const s = stats(samples[j]);
    return [c.name, fmt(s.min), fmt(s.median), fmt(s.max), fmt(s.median / floor, 2)];
  }));
  verdict(stats(samples[2]).median <= 3 * floor, `berth run --rm true median ≤ 3x the runc floor (${fmt(stats(samples[2]).median)} ms vs ${fmt(floor)} ms)`);
  console.log(`against runc on berth's own spec: ${fmt(stats(samples[2]).median / stats(samples[1]).median, 2)}x`);
  if (engine) {
    const ratio = stats(samples[4]).median / stats(samples[5]).median;
    verdict(ratio <= 0.25, `berth run --rm --network none at most 0.25x Docker ${engine.version}'s (${fmt(ratio, 2)}x)`);
    await engine.stop();
  } else {
    console.log('no Docker engine here (apt-get install docker.io gives one); against it the target is 0.25x.');
  }

  section('monitor memory');
  const id = (await timeOk(BERTH, ['run', '-d', 'busybox', 'sleep', '60'], { env })).stdout.trim();
  const pidFile = join(d.dataRoot, 'run', id.slice(0, 12), 'monitor.pid');
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  const mem = procMemory(pid);
  console.log(`berth-monitor for one running container: VmRSS ${fmt(mem.rss, 2)} MiB (containerd-shim is about 13 MB)`);
  verdict(mem.rss < 3, 'monitor RSS under 3 MB');
  await timeOk(BERTH, ['rm', '-f', id], { env });
});
