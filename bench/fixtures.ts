// Archives the benchmarks load: many tiny images, or one big multi-layer image.
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { writeTar, type TarWriteEntry } from '../src/common/tar.ts';
import { dockerArchive, dir, file, tarBytes } from '../test/helpers/tars.ts';

export const MANY_IMAGES = 1000;

/** The tag of the i-th tiny image: 100 repositories with 10 tags each. */
export const manyImageTag = (i: number): string => `bench/app${String(i % 100).padStart(2, '0')}:v${Math.floor(i / 100)}`;

/**
 * Writes ONE docker-archive holding `count` distinct tiny images: each has its
 * own config (its own label and creation time, so its own ID) and tag, and all
 * share one small layer, so the archive stays small and loads in one call.
 */
export async function writeManyImagesArchive(path: string, count = MANY_IMAGES): Promise<{ bytes: number; ids: string[] }> {
  const layer = [dir('etc/'), file('etc/bench-layer', 'shared by every bench image\n')];
  const t0 = Date.UTC(2024, 0, 1);
  const { tar, ids } = await dockerArchive(
    Array.from({ length: count }, (_, i) => ({
      layers: [layer],
      tags: [manyImageTag(i)],
      config: {
        created: new Date(t0 + i * 60_000).toISOString(),
        config: { Cmd: ['sh'], Labels: { 'bench.index': String(i), 'bench.group': `g${i % 10}` } },
      },
    })),
  );
  if (new Set(ids).size !== count) throw new Error(`expected ${count} distinct image IDs, got ${new Set(ids).size}`);
  await writeFile(path, tar);
  return { bytes: tar.length, ids };
}

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/**
 * Writes a docker-archive of one image with `layers` uncompressed layers of
 * about `layerMiB` MiB each. Each layer holds `filesPerLayer` files of random
 * (incompressible) bytes plus a few small text files. Layers are built one at
 * a time in memory and the archive streams to disk.
 */
export async function writeBigArchive(path: string, opts: { layers: number; layerMiB: number; filesPerLayer: number; tag: string }): Promise<{ bytes: number; layerBytes: number }> {
  const layerBlobs: { digest: string; tar: Buffer }[] = [];
  for (let l = 0; l < opts.layers; l++) {
    const per = Math.floor((opts.layerMiB << 20) / opts.filesPerLayer);
    const entries: TarWriteEntry[] = [dir(`data${l}/`)];
    for (let f = 0; f < opts.filesPerLayer; f++) entries.push(file(`data${l}/blob-${f}.bin`, randomBytes(per)));
    entries.push(dir('etc/'), file(`etc/layer-${l}.txt`, `layer ${l} of the load benchmark\n`.repeat(64)));
    const tar = await tarBytes(entries);
    layerBlobs.push({ digest: sha(tar), tar });
  }
  const diffIds = layerBlobs.map((b) => b.digest);
  const config = Buffer.from(JSON.stringify({
    architecture: process.arch === 'arm64' ? 'arm64' : 'amd64', os: 'linux', created: '2024-01-02T03:04:05Z',
    config: { Cmd: ['sh'], Labels: { 'bench.kind': 'load-throughput' } },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: diffIds.map((_, i) => ({ created: '2024-01-02T03:04:05Z', created_by: `bench layer ${i}` })),
  }));
  const configDigest = sha(config);
  const blobPath = (d: string) => `blobs/${d.replace(':', '/')}`;
  const manifest = Buffer.from(JSON.stringify([{ Config: blobPath(configDigest), RepoTags: [opts.tag], Layers: diffIds.map(blobPath) }]));
  const entries: TarWriteEntry[] = [
    dir('blobs/'), dir('blobs/sha256/'),
    file(blobPath(configDigest), config),
    ...layerBlobs.map((b) => file(blobPath(b.digest), b.tar)),
    file('manifest.json', manifest),
  ];
  let bytes = 0;
  await pipeline(
    async function* () {
      for await (const chunk of writeTar(entries)) {
        bytes += chunk.length;
        yield chunk;
      }
    },
    createWriteStream(path),
  );
  return { bytes, layerBytes: layerBlobs.reduce((n, b) => n + b.tar.length, 0) };
}
