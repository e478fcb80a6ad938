// Throughput of `berth load -i` for a ~500 MiB multi-layer docker-archive,
// against the disk's own floor measured in the same run: `cat archive >
// /dev/null` plus `cp archive copy`. Also the real docker CLI's `docker load -i`
// against berthd. Target: berth load within 1.5x the time of cat + cp.
import { closeSync, openSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH, DOCKER, Daemon, NODE24, fmt, main, removeTree, section, stats, table, tempDir, timeOk, verdict } from './lib.ts';
import { writeBigArchive } from './fixtures.ts';

const RUNS = Number(process.env.BENCH_N ?? 4);
const LAYERS = Number(process.env.BENCH_LAYERS ?? 5);
const LAYER_MIB = Number(process.env.BENCH_LAYER_MIB ?? 100);
const FILES_PER_LAYER = 4;
const TARGET_RATIO = 1.5;
const TAG = 'bench/load:latest';
const MIB = 1 << 20;
const HASH_ONE_PASS = `const h = require('node:crypto').createHash('sha256');
require('node:fs').createReadStream(process.argv[1], { highWaterMark: 1 << 20 })
  .on('data', (c) => h.update(c)).on('end', () => console.log(h.digest('hex')));`;

await main(async () => {
  const dir = tempDir('load');
  const archive = join(dir, 'big.tar');
  const t0 = performance.now();
  const { bytes } = await writeBigArchive(archive, { layers: LAYERS, layerMiB: LAYER_MIB, filesPerLayer: FILES_PER_LAYER, tag: TAG });
  if (statSync(archive).size !== bytes) throw new Error('archive size mismatch');
  console.log(`load-throughput: ${fmt(bytes / MIB)} MiB docker-archive, ${LAYERS} uncompressed layers of ~${LAYER_MIB} MiB (${FILES_PER_LAYER} random-byte files each), built in ${fmt((performance.now() - t0) / 1000)} s`);
  console.log(`${RUNS} measured rounds after 1 warm-up round; each round runs (a) cat + cp, (b) berth load, (c) docker load, in that order`);
  console.log('page cache: nothing is dropped (this needs no root and disturbs nothing else), so the archive is read from memory in every case;');
  console.log('  cp and cat do not fsync, berth commits each blob with fsync: the cp + fsync row shows what that costs the floor;');
  console.log('  berth verifies every blob\'s SHA-256: the node sha256 row is one hashing pass over the archive');
  console.log(`every load goes into a fresh berthd on a fresh data root (then rmi, stop, rm -rf), so every run really writes; files under ${dir}`);

  const devnull = openSync('/dev/null', 'w');
  const copy = join(dir, 'copy.tar');

  const floor = async () => {
    const cat = await timeOk('cat', [archive], { stdio: ['ignore', devnull, 'pipe'] });
    // --reflink=never: a copy-on-write clone would copy nothing.
    const cp = await timeOk('cp', ['--reflink=never', archive, copy]);
    const sync = await timeOk('sync', [copy]); // fsync of the copy alone
    rmSync(copy);
    // One SHA-256 pass over the bytes with Node's own crypto (the code berth
    // hashes with; coreutils sha256sum lacks the CPU's SHA instructions and is
    // several times slower): what verifying a digest costs at the least.
    const sum = await timeOk(NODE24, ['-e', HASH_ONE_PASS, archive]);
    return { cat: cat.ms, cp: cp.ms, sync: sync.ms, sha: sum.ms };
  };

  let seq = 0;
  const loadWith = async (client: 'berth' | 'docker') => {
    const ddir = join(dir, `${client}-${seq++}`);
    const d = await Daemon.start(ddir);
    const r = client === 'berth'
      ? await timeOk(BERTH, ['load', '-q', '-i', archive], { env: d.env })
      : await timeOk(DOCKER, ['load', '-q', '-i', archive], { env: d.env });
    const ids = (await timeOk(BERTH, ['images', '-q', TAG], { env: d.env })).stdout.trim().split('\n').filter(Boolean);
    if (ids.length !== 1) throw new Error(`after ${client} load, ${TAG} is not in the store: ${r.stdout} ${r.stderr}`);
    await timeOk(BERTH, ['rmi', TAG], { env: d.env });
    const code = await d.stop();
    if (code !== 0) throw new Error(`berthd exited with ${code} after a ${client} load:\n${d.log}`);
    removeTree(ddir);
    return r.ms;
  };

  const cat: number[] = [];
  const cp: number[] = [];
  const sync: number[] = [];
  const sha: number[] = [];
  const floorSum: number[] = [];
  const berth: number[] = [];
  const docker: number[] = [];
  for (let round = 0; round <= RUNS; round++) {
    const f = await floor();
    const b = await loadWith('berth');
    const k = await loadWith('docker');
    const tag = round === 0 ? 'warm-up' : `round ${round}`;
    console.log(`${tag.padEnd(8)}  cat ${fmt(f.cat, 0)} ms + cp ${fmt(f.cp, 0)} ms (fsync +${fmt(f.sync, 0)} ms; node sha256 ${fmt(f.sha, 0)} ms)   berth load ${fmt(b, 0)} ms   docker load ${fmt(k, 0)} ms`);
    if (round === 0) continue;
    cat.push(f.cat);
    cp.push(f.cp);
    sync.push(f.sync);
    sha.push(f.sha);
    floorSum.push(f.cat + f.cp);
    berth.push(b);
    docker.push(k);
  }
  closeSync(devnull);

  const mbs = (ms: number) => bytes / MIB / (ms / 1000);
  const floorMed = stats(floorSum).median;
  const cpSync = cp.map((x, i) => cat[i] + x + sync[i]);
  const rows: [string, number[]][] = [
    ['cat > /dev/null', cat],
    ['cp --reflink=never', cp],
    ['(a) cat + cp  [floor]', floorSum],
    ['cat + cp + fsync (info)', cpSync],
    ['node sha256, 1 pass (info)', sha],
    ['(b) berth load -i', berth],
    ['(c) docker load -i', docker],
  ];
  section(`results (${fmt(bytes / MIB)} MiB archive; MiB/s is archive size over median time)`);
  table(['step', 'min ms', 'median ms', 'max ms', 'MiB/s', 'vs floor'], rows.map(([name, xs]) => {
    const s = stats(xs);
    return [name, fmt(s.min, 0), fmt(s.median, 0), fmt(s.max, 0), fmt(mbs(s.median), 0), `${fmt(s.median / floorMed, 2)}x`];
  }));
  const berthMed = stats(berth).median;
  const dockerMed = stats(docker).median;
  console.log(`berth load / docker load (same daemon, different client): ${fmt(berthMed / dockerMed, 2)}x`);
  console.log(`berth load / (cat + cp + fsync): ${fmt(berthMed / stats(cpSync).median, 2)}x`);

  section('targets');
  const ratio = berthMed / floorMed;
  verdict(ratio <= TARGET_RATIO, `berth load: ${fmt(mbs(berthMed), 0)} MiB/s vs cat + cp ${fmt(mbs(floorMed), 0)} MiB/s, ratio ${fmt(ratio, 2)}x (target <= ${TARGET_RATIO}x)`);
});
