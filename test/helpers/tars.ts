import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { writeTar, type TarWriteEntry } from '../../src/common/tar.ts';

export type Entry = TarWriteEntry;

export async function tarBytes(entries: Iterable<Entry> | AsyncIterable<Entry>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of writeTar(entries)) parts.push(c);
  return Buffer.concat(parts);
}

export const file = (name: string, content: string | Buffer, mode = 0o644): Entry => {
  const body = Buffer.from(content);
  return { header: { name, type: 'file', mode, size: body.length, mtime: 0 }, body };
};
export const dir = (name: string, mode = 0o755): Entry => ({ header: { name, type: 'directory', mode, mtime: 0 } });
export const symlink = (name: string, target: string): Entry => ({ header: { name, type: 'symlink', linkname: target, mode: 0o777, mtime: 0 } });
export const hardlink = (name: string, target: string): Entry => ({ header: { name, type: 'hardlink', linkname: target, mode: 0o644, mtime: 0 } });
export const device = (name: string, major: number, minor: number, type: 'char' | 'block' = 'char'): Entry => ({
  header: { name, type, devmajor: major, devminor: minor, mode: 0o600, mtime: 0 },
});

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface ArchiveImage {
  layers: Entry[][];
  tags?: string[];
  /** Extra config fields. */
  config?: Record<string, unknown>;
  gzip?: boolean;
}

/**
 * A docker-archive (Docker 25 layout: blobs/sha256 plus manifest.json) made in
 * memory, so tests can hand berth and docker any archive, hostile ones too.
 */
export async function dockerArchive(images: ArchiveImage[], extra: Entry[] = []): Promise<{ tar: Buffer; ids: string[]; diffIds: string[][] }> {
  const blobs = new Map<string, Buffer>();
  const manifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const ids: string[] = [];
  const allDiffIds: string[][] = [];
  for (const img of images) {
    const layerPaths: string[] = [];
    const diffIds: string[] = [];
    for (const entries of img.layers) {
      const plain = await tarBytes(entries);
      diffIds.push(sha(plain));
      const stored = img.gzip ? gzipSync(plain) : plain;
      const d = sha(stored);
      blobs.set(d, stored);
      layerPaths.push(`blobs/${d.replace(':', '/')}`);
    }
    const config = Buffer.from(JSON.stringify({
      architecture: process.arch === 'arm64' ? 'arm64' : 'amd64', os: 'linux', created: '2024-01-02T03:04:05Z',
      config: { Cmd: ['sh'] }, rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created: '2024-01-02T03:04:05Z', created_by: 'test' })),
      ...img.config,
    }));
    const cd = sha(config);
    blobs.set(cd, config);
    ids.push(cd);
    allDiffIds.push(diffIds);
    manifest.push({ Config: `blobs/${cd.replace(':', '/')}`, RepoTags: img.tags ?? null, Layers: layerPaths });
  }
  const entries: Entry[] = [dir('blobs/'), dir('blobs/sha256/')];
  for (const [d, b] of blobs) entries.push(file(`blobs/${d.replace(':', '/')}`, b));
  entries.push(...extra);
  entries.push(file('manifest.json', JSON.stringify(manifest)));
  return { tar: await tarBytes(entries), ids, diffIds: allDiffIds };
}
