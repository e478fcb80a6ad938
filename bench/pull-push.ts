// Pull and push of a 5-layer image of about 300 MB over loopback, against
// Debian's docker-registry (distribution 2.8), in one run:
//   pull: berth pull (download + unpack into overlay snapshots) vs docker pull
//         (a private Docker engine: download, then extract) vs skopeo copy to
//         an OCI layout (download only, no unpack);
//   push: berth push vs docker push, each to a fresh, empty registry.
// Target: berth pull, including the unpack, at least 1.5x faster than docker pull.
// Layers are mostly random (incompressible) bytes with some compressible text,
// gzip-compressed as a real registry holds them.
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzip as gzipCb } from 'node:zlib';
import { sha256 } from '../src/common/digest.ts';
import { writeTar, type TarWriteEntry } from '../src/common/tar.ts';
import { createRegistryClient } from '../src/distribution/client.ts';
import { MediaType, hostPlatform } from '../src/images/oci.ts';
import { parseReference } from '../src/images/reference.ts';
import { TestRegistry } from '../test/helpers/registry.ts';
import { dir, file } from '../test/helpers/tars.ts';
import {
  BERTH, DOCKER, Daemon, fmt, main, onCleanup, section, sleep, startDockerEngine, stats, table, tempDir, timeOk, verdict,
} from './lib.ts';

const RUNS = Number(process.env.BENCH_N ?? 5);
const LAYERS = 5;
const LAYER_MB = Number(process.env.BENCH_LAYER_MB ?? 60);
const TARGET = 1.5;
const MB = 1e6;
const gzip = promisify(gzipCb);

interface Blob { digest: string; size: number; bytes: Buffer }

/** One layer: four random files and two of compressible text, about LAYER_MB in all; gzip at the default level. */
async function makeLayer(i: number): Promise<{ blob: Blob; diffId: string; tarSize: number }> {
  const random = Math.floor(LAYER_MB * MB * 0.8 / 4);
  const text = Math.floor(LAYER_MB * MB * 0.2 / 2);
  const entries: TarWriteEntry[] = [dir(`data${i}/`)];
  for (let f = 0; f < 4; f++) entries.push(file(`data${i}/random-${f}.bin`, randomBytes(random)));
  for (let f = 0; f < 2; f++) {
    const lines: string[] = [];
    let n = 0;
    for (let k = 0; n < text; k++) {
      const line = `layer ${i} file ${f} line ${k}: the quick brown fox jumps over the lazy dog ${k % 97}\n`;
      lines.push(line);
      n += line.length;
    }
    entries.push(file(`data${i}/text-${f}.txt`, lines.join('').slice(0, text)));
  }
  const parts: Buffer[] = [];
  for await (const c of writeTar(entries)) parts.push(c);
  const tar = Buffer.concat(parts);
  const gz = await gzip(tar);
  return { blob: { digest: sha256(gz), size: gz.length, bytes: gz }, diffId: sha256(tar), tarSize: tar.length };
}

/** Pushes the image to `host/bench:v1` with berth's own registry client (no daemon involved); returns the bytes on the wire. */
async function seedRegistry(host: string): Promise<{ compressed: number; uncompressed: number }> {
  const layers = await Promise.all(Array.from({ length: LAYERS }, (_, i) => makeLayer(i)));
  const p = hostPlatform();
  const config = Buffer.from(JSON.stringify({
    architecture: p.architecture, os: p.os, created: '2024-01-01T00:00:00Z', config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: `bench layer ${i}` })),
  }));
  const cfg: Blob = { digest: sha256(config), size: config.length, bytes: config };
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MediaType.DockerManifest,
    config: { mediaType: MediaType.DockerConfig, digest: cfg.digest, size: cfg.size },
    layers: layers.map((l) => ({ mediaType: MediaType.DockerLayerGzip, digest: l.blob.digest, size: l.blob.size })),
  }));
  const client = createRegistryClient({ insecure: [], mirrors: [], credentials: () => undefined });
  const repo = client.repository(parseReference(`${host}/bench:v1`), ['pull', 'push']);
  const { Readable } = await import('node:stream');
  for (const b of [cfg, ...layers.map((l) => l.blob)]) {
    await repo.pushBlob({ mediaType: 'application/octet-stream', digest: b.digest as never, size: b.size }, () => Readable.from([b.bytes]));
  }
  await repo.putManifest('v1', manifest, MediaType.DockerManifest);
  return { compressed: layers.reduce((n, l) => n + l.blob.size, 0), uncompressed: layers.reduce((n, l) => n + l.tarSize, 0) };
}

/** Waits until berthd's GC has removed what an rmi left, so the next pull really downloads. */
async function waitForEmptyStore(dataRoot: string, baseline: number): Promise<void> {
  const blobs = join(dataRoot, 'content', 'blobs', 'sha256');
  for (let i = 0; i < 300; i++) {
    if (!existsSync(blobs) || readdirSync(blobs).length <= baseline) return;
    await sleep(50);
  }
  throw new Error('berthd did not collect the pulled blobs after rmi');
}

await main(async () => {
  const work = tempDir('pull-push');
  const reg = await TestRegistry.start();
  onCleanup(() => void reg.cleanup());
  const t0 = performance.now();
  const seeded = await seedRegistry(reg.host);
  const image = `${reg.host}/bench:v1`;
  console.log(`pull-push: ${LAYERS} layers, ${fmt(seeded.uncompressed / MB)} MB of tar (${fmt(seeded.compressed / MB)} MB gzip on the wire), seeded into docker-registry at ${reg.host} in ${fmt((performance.now() - t0) / 1000)} s`);
  console.log(`${RUNS} measured rounds after 1 warm-up round; each round: berth pull, docker pull, skopeo copy; then berth push and docker push, each to a fresh empty registry`);
  console.log('every pull starts with the image absent (rmi, and for berth the GC has swept its blobs and snapshots); the registry\'s files are in the page cache');

  const d = await Daemon.start(join(work, 'berthd'));
  const engine = await startDockerEngine(work);
  if (!engine) console.log('dockerd is not installed: the docker rows are skipped');
  else console.log(`docker engine ${engine.version} (private, overlay2)`);
  const baselineBlobs = () => {
    const p = join(d.dataRoot, 'content', 'blobs', 'sha256');
    return existsSync(p) ? readdirSync(p).length : 0;
  };
  const base = baselineBlobs();

  const berthPull: number[] = [];
  const dockerPull: number[] = [];
  const skopeo: number[] = [];
  const berthPush: number[] = [];
  const dockerPush: number[] = [];
  for (let round = 0; round <= RUNS; round++) {
    const b = await timeOk(BERTH, ['pull', '-q', image], { env: d.env });
    const id = (await timeOk(BERTH, ['images', '-q', '--no-trunc', image], { env: d.env })).stdout.trim();
    if (!id.startsWith('sha256:')) throw new Error(`berth pull left no image: ${b.stdout} ${b.stderr}`);

    // Push before the rmi: the image is here. A fresh registry each time, so every layer goes up.
    const pushReg = await TestRegistry.start();
    await timeOk(BERTH, ['tag', image, `${pushReg.host}/pushed:v1`], { env: d.env });
    const bp = await timeOk(BERTH, ['push', '-q', `${pushReg.host}/pushed:v1`], { env: d.env });
    await pushReg.cleanup();
    await timeOk(BERTH, ['rmi', image, `${pushReg.host}/pushed:v1`], { env: d.env });
    await waitForEmptyStore(d.dataRoot, base);

    let k: number | undefined;
    let kp: number | undefined;
    if (engine) {
      const dk = await timeOk(DOCKER, ['pull', '-q', image], { env: engine.env });
      k = dk.ms;
      const pushReg2 = await TestRegistry.start();
      await timeOk(DOCKER, ['tag', image, `${pushReg2.host}/pushed:v1`], { env: engine.env });
      kp = (await timeOk(DOCKER, ['push', '-q', `${pushReg2.host}/pushed:v1`], { env: engine.env })).ms;
      await pushReg2.cleanup();
      await timeOk(DOCKER, ['rmi', image, `${pushReg2.host}/pushed:v1`], { env: engine.env });
    }

    const layout = join(work, `oci-${round}`);
    const s = await timeOk('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `docker://${image}`, `oci:${layout}:v1`]);
    await timeOk('rm', ['-rf', layout]);

    const tag = round === 0 ? 'warm-up' : `round ${round}`;
    console.log(`${tag.padEnd(8)}  pull: berth ${fmt(b.ms, 0)} ms  docker ${k === undefined ? '-' : fmt(k, 0)} ms  skopeo ${fmt(s.ms, 0)} ms   push: berth ${fmt(bp.ms, 0)} ms  docker ${kp === undefined ? '-' : fmt(kp, 0)} ms`);
    if (round === 0) continue;
    berthPull.push(b.ms);
    skopeo.push(s.ms);
    berthPush.push(bp.ms);
    if (k !== undefined) dockerPull.push(k);
    if (kp !== undefined) dockerPush.push(kp);
  }
  await engine?.stop();

  const mbs = (ms: number) => seeded.compressed / MB / (ms / 1000);
  section(`results (${fmt(seeded.compressed / MB)} MB compressed, ${fmt(seeded.uncompressed / MB)} MB unpacked; MB/s is compressed bytes over median time)`);
  const rows: [string, number[]][] = [
    ['berth pull (incl. unpack)', berthPull],
    ['docker pull (incl. unpack)', dockerPull],
    ['skopeo copy to oci: (no unpack)', skopeo],
    ['berth push (fresh registry)', berthPush],
    ['docker push (fresh registry)', dockerPush],
  ];
  table(['step', 'min ms', 'median ms', 'max ms', 'MB/s'], rows.filter(([, xs]) => xs.length > 0).map(([name, xs]) => {
    const s = stats(xs);
    return [name, fmt(s.min, 0), fmt(s.median, 0), fmt(s.max, 0), fmt(mbs(s.median), 0)];
  }));
  const bp = stats(berthPull).median;
  console.log(`berth pull / skopeo copy: ${fmt(bp / stats(skopeo).median, 2)}x (skopeo does not unpack)`);
  if (dockerPush.length) console.log(`docker push / berth push: ${fmt(stats(dockerPush).median / stats(berthPush).median, 2)}x (docker gzips its uncompressed layers again; berth sends the blobs it pulled)`);

  section('targets');
  if (dockerPull.length) {
    const ratio = stats(dockerPull).median / bp;
    verdict(ratio >= TARGET, `berth pull incl. unpack ${fmt(bp, 0)} ms vs docker pull ${fmt(stats(dockerPull).median, 0)} ms: ${fmt(ratio, 2)}x faster (target >= ${TARGET}x)`);
  } else {
    console.log('no docker engine: the pull target was not measured');
  }
});
