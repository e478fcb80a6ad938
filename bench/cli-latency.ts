// Wall time of `berth version` and `berth image ls` with 1,000 images in the
// store, against the real docker CLI talking to the same berthd and against
// the floor of starting Node at all. Target: both berth medians under 100 ms.
import { join } from 'node:path';
import { BERTH, DOCKER, Daemon, NODE24, fmt, main, section, stats, table, tempDir, timeApi, timeOk, verdict, type Stats } from './lib.ts';
import { MANY_IMAGES, writeManyImagesArchive } from './fixtures.ts';

const N = Number(process.env.BENCH_N ?? 30);
const WARMUP = 3;
const TARGET_MS = 100;

interface Case { name: string; cmd: string; args: string[]; samples: number[] }

await main(async () => {
  const dir = tempDir('cli');
  console.log(`cli-latency: ${N} runs per command after ${WARMUP} warm-up runs, interleaved; wall time from spawn to exit (node's hrtime)`);

  const archive = join(dir, 'many.tar');
  const { bytes } = await writeManyImagesArchive(archive);
  const d = await Daemon.start(dir);
  const env = d.env;
  const load = await timeOk(BERTH, ['load', '-q', '-i', archive], { env });
  console.log(`setup: loaded ${MANY_IMAGES} images from one ${fmt(bytes / 1024, 0)} KiB docker-archive in ${fmt(load.ms, 0)} ms`);
  const q = await timeOk(BERTH, ['images', '-q'], { env });
  const count = q.stdout.split('\n').filter(Boolean).length;
  if (count !== MANY_IMAGES) throw new Error(`berth images -q listed ${count} images, expected ${MANY_IMAGES}`);
  const dq = await timeOk(DOCKER, ['image', 'ls', '-q'], { env });
  const dcount = dq.stdout.split('\n').filter(Boolean).length;
  if (dcount !== MANY_IMAGES) throw new Error(`docker image ls -q listed ${dcount} images, expected ${MANY_IMAGES}`);
  console.log(`setup: berth images -q | wc -l = ${count}; docker image ls -q | wc -l = ${dcount}`);

  const cases: Case[] = [
    { name: 'berth version', cmd: BERTH, args: ['version'], samples: [] },
    { name: 'berth image ls', cmd: BERTH, args: ['image', 'ls'], samples: [] },
    { name: 'docker version', cmd: DOCKER, args: ['version'], samples: [] },
    { name: 'docker image ls', cmd: DOCKER, args: ['image', 'ls'], samples: [] },
    { name: 'node24 -e 0', cmd: NODE24, args: ['-e', '0'], samples: [] },
  ];
  const rows = (await timeOk(BERTH, ['image', 'ls'], { env })).stdout.split('\n').filter(Boolean).length - 1;
  const drows = (await timeOk(DOCKER, ['image', 'ls'], { env })).stdout.split('\n').filter(Boolean).length - 1;
  console.log(`setup: berth image ls prints ${rows} rows, docker image ls prints ${drows} rows`);

  // The daemon's share: the same API calls made from this process over a fresh
  // connection each, so no client process starts.
  const api = [
    { name: 'GET /version', path: '/v1.50/version', samples: [] as number[], bytes: 0 },
    { name: 'GET /images/json', path: '/v1.50/images/json', samples: [] as number[], bytes: 0 },
  ];
  const callApi = async (a: (typeof api)[number]) => {
    const r = await timeApi(d.socket, 'GET', a.path);
    if (r.status !== 200) throw new Error(`${a.name} answered ${r.status}`);
    a.bytes = r.bytes;
    return r.ms;
  };

  for (let i = 0; i < WARMUP; i++) {
    for (const c of cases) await timeOk(c.cmd, c.args, { env });
    for (const a of api) await callApi(a);
  }
  for (let i = 0; i < N; i++) {
    for (const c of cases) c.samples.push((await timeOk(c.cmd, c.args, { env })).ms);
    for (const a of api) a.samples.push(await callApi(a));
  }

  const s = new Map<string, Stats>(cases.map((c) => [c.name, stats(c.samples)]));
  const floor = s.get('node24 -e 0')!.median;
  const peer: Record<string, string> = { 'berth version': 'docker version', 'berth image ls': 'docker image ls' };
  section('results (ms)');
  table(
    ['command', 'min', 'median', 'max', 'vs docker', 'vs node floor', 'over floor'],
    cases.map((c) => {
      const st = s.get(c.name)!;
      const p = peer[c.name] ? s.get(peer[c.name])!.median : undefined;
      return [
        c.name, fmt(st.min), fmt(st.median), fmt(st.max),
        p ? `${fmt(st.median / p, 2)}x` : '',
        c.cmd === NODE24 ? '' : `${fmt(st.median / floor, 2)}x`,
        c.cmd === NODE24 ? '' : `${st.median - floor >= 0 ? '+' : ''}${fmt(st.median - floor)}`,
      ];
    }),
  );
  section('daemon share: the API call alone, from this process (ms)');
  table(['request', 'min', 'median', 'max', 'body bytes'], api.map((a) => {
    const st = stats(a.samples);
    return [a.name, fmt(st.min), fmt(st.median), fmt(st.max), String(a.bytes)];
  }));
  console.log('(docker is the real Go CLI against the same berthd, so the ratio is the cost of the client itself; the node floor is bin/node24 -e 0)');

  section('targets');
  for (const name of ['berth version', 'berth image ls']) {
    const m = s.get(name)!.median;
    verdict(m < TARGET_MS, `${name}: median ${fmt(m)} ms (target < ${TARGET_MS} ms, ${MANY_IMAGES} images in the store)`);
  }
  await d.stop();
});
