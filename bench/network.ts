// Networking costs, in one run:
// - the wall time bridge networking adds to `berth run --rm busybox true`, against `--network none`
//   (target: under 30 ms);
// - throughput of a 1 GiB body pulled by a loopback client through a published port, against the
//   same server and client with no container in between (target: at least 0.8x the direct figure).
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH, Daemon, busyboxRootfs, importBusybox, fmt, main, onCleanup, section, sleep, stats, table, tempDir, timeOk, verdict } from './lib.ts';

const N = Number(process.env.BENCH_N ?? 20);
const PULLS = Number(process.env.BENCH_PULLS ?? 5);
const WARMUP = 3;
const BODY = 1 << 30;

await main(async () => {
  const dir = tempDir('network');
  const rootfsTar = busyboxRootfs(dir);
  const d = await Daemon.start(dir);
  const env = d.env;
  await importBusybox(d, rootfsTar);

  section('run --rm true: bridge against --network none');
  const cases = [
    { name: 'berth run --rm --network none true', args: ['run', '--rm', '--network', 'none', 'busybox', 'true'] },
    { name: 'berth run --rm true (default bridge)', args: ['run', '--rm', 'busybox', 'true'] },
    { name: 'berth run --rm -p 127.0.0.1::80 true', args: ['run', '--rm', '-p', '127.0.0.1::80', 'busybox', 'true'] },
  ];
  const samples = cases.map(() => [] as number[]);
  for (let i = 0; i < WARMUP + N; i++) {
    for (const [j, c] of cases.entries()) {
      const t = await timeOk(BERTH, c.args, { env });
      if (i >= WARMUP) samples[j].push(t.ms);
    }
  }
  const none = stats(samples[0]).median;
  table(['command', 'min ms', 'median ms', 'max ms', '+ms over none'], cases.map((c, j) => {
    const s = stats(samples[j]);
    return [c.name, fmt(s.min), fmt(s.median), fmt(s.max), fmt(s.median - none)];
  }));
  const extra = stats(samples[1]).median - none;
  verdict(extra < 30, `bridge networking adds under 30 ms to run --rm true (${fmt(extra)} ms)`);

  section(`throughput: a ${BODY >> 20} MiB body over loopback, direct and through a published port`);
  const www = join(dir, 'www');
  mkdirSync(www);
  // A sparse file: the server reads zeros from the page cache, so the network path is what is measured.
  execFileSync('truncate', ['-s', String(BODY), join(www, 'body')]);
  const direct = spawn('busybox', ['httpd', '-f', '-p', '127.0.0.1:18970', '-h', www], { stdio: 'ignore' });
  onCleanup(() => direct.kill('SIGKILL'));
  onCleanup(() => spawnSync(BERTH, ['rm', '-f', 'bench-web'], { env: { ...process.env, ...env } }));
  await timeOk(BERTH, ['run', '-d', '--name', 'bench-web', '-p', '127.0.0.1:18971:80', '-v', `${www}:/www:ro`, 'busybox', 'httpd', '-f', '-p', '80', '-h', '/www'], { env });
  await sleep(300);
  const pull = async (port: number) => {
    const t = await timeOk('busybox', ['wget', '-qO', '/dev/null', `http://127.0.0.1:${port}/body`]);
    return BODY / (1 << 20) / (t.ms / 1000);
  };
  const rates = { direct: [] as number[], published: [] as number[] };
  await pull(18970);
  await pull(18971);
  for (let i = 0; i < PULLS; i++) {
    rates.direct.push(await pull(18970));
    rates.published.push(await pull(18971));
  }
  const dm = stats(rates.direct).median;
  const pm = stats(rates.published).median;
  table(['path', 'min MiB/s', 'median MiB/s', 'max MiB/s'], [
    ['direct: busybox httpd on the host', fmt(stats(rates.direct).min), fmt(dm), fmt(stats(rates.direct).max)],
    ['published port: httpd in a container', fmt(stats(rates.published).min), fmt(pm), fmt(stats(rates.published).max)],
  ]);
  verdict(pm >= 0.8 * dm, `published port throughput at least 0.8x direct (${fmt(pm / dm, 2)}x)`);
  await timeOk(BERTH, ['rm', '-f', 'bench-web'], { env });
});
