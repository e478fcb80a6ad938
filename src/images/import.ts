import { invalidArgument } from '../common/errors.ts';
import type { ContentStore } from '../content/store.ts';
import { LayerScanner } from '../diff/scan.ts';
import type { Lease } from '../metadata/leases.ts';
import { writeOciImage } from './oci-image.ts';
import { applyChanges } from './changes.ts';
import { type ImageConfig, MediaType, type Platform, hostPlatform } from './oci.ts';
import type { NewImage } from './store.ts';

export interface ImportOptions {
  changes?: string[];
  message?: string;
  platform?: Platform;
  /** What the history says the layer came from: '-' for stdin, as Docker prints. */
  source?: string;
}

/**
 * Turns a root filesystem tarball (plain, gzip or zstd) into a one-layer
 * image. The tar is stored as the layer after a full scan: it must be a tar
 * and must not be hostile. Compressed input is stored compressed.
 */
export async function importTarball(source: AsyncIterable<Uint8Array>, content: ContentStore, lease: Lease, opts: ImportOptions = {}): Promise<NewImage> {
  const ing = await content.ingest();
  const scanner = new LayerScanner();
  try {
    for await (const chunk of source) await Promise.all([ing.write(chunk), scanner.push(chunk)]);
    const scan = await scanner.finish();
    if (ing.size === 0) throw invalidArgument('import: the tarball is empty');
    if (scan.error) throw invalidArgument(`import: ${scan.error.message}`, scan.error);
    if (scan.entries === 0) throw invalidArgument('import: the tarball holds no files');
    const blob = await ing.commit({}, (d) => lease.blobs.add(d));
    const diffId = scan.diffId ?? blob.digest;
    const now = new Date().toISOString();
    const platform = opts.platform ?? hostPlatform();
    const config: ImageConfig = {
      architecture: platform.architecture,
      os: platform.os,
      ...(platform.variant ? { variant: platform.variant } : {}),
      created: now,
      config: applyChanges({}, opts.changes ?? []),
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created: now, comment: opts.message || `Imported from ${opts.source ?? '-'}` }],
    };
    if (opts.message) config.comment = opts.message;
    const mediaType = scan.compression === 'gzip' ? MediaType.OciLayerGzip : scan.compression === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
    const layer = { blob: blob.digest, diffId, size: blob.size, unpackedSize: scan.size, mediaType };
    return (await writeOciImage(content, config, [layer], (d) => lease.blobs.add(d))).image;
  } catch (e) {
    await ing.abort();
    throw e;
  }
}

