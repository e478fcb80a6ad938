// Mark and sweep over a registry root. Marks start from each repository's manifests (every
// revision, or only tagged ones with `deleteUntagged`) and follow index children and referrers
// (manifests whose subject is a marked manifest). Every blob no marked manifest references is
// swept, with the repository links that pointed at it.
//
// It is not safe against a running server that accepts pushes: a blob uploaded but not yet
// referenced by a manifest looks exactly like garbage. Run it with the server stopped (or
// with pushes held off), as with the reference registry's garbage-collect.
import { type Digest, isDigest } from '../common/digest.ts';
import { hexDigest, layout, BLOBS } from './layout.ts';
import type { StorageDriver } from './storage/driver.ts';
import { parseManifest, RegistryStore } from './store.ts';

export interface GcOptions {
  dryRun: boolean;
  deleteUntagged: boolean;
  /** One line per manifest or blob removed (or that would be). */
  report: (line: string) => void;
}

export interface GcResult {
  manifests: { name: string; digest: Digest }[];
  blobs: { digest: Digest; size: number }[];
  bytes: number;
}

export async function collectGarbage(driver: StorageDriver, opts: GcOptions): Promise<GcResult> {
  const store = new RegistryStore(driver);
  const marked = new Set<Digest>();
  const result: GcResult = { manifests: [], blobs: [], bytes: 0 };
  const verb = opts.dryRun ? 'would remove' : 'removed';
  const repositories = await store.catalog();

  for (const name of repositories) {
    const revisions = (await driver.list(layout.revisions(name))).map(hexDigest).filter(isDigest);
    const tagged = new Set<Digest>();
    for (const tag of (await store.tags(name)) ?? []) {
      const d = (await driver.getContent(layout.tag(name, tag)))?.toString('utf8').trim();
      if (d && isDigest(d)) tagged.add(d);
    }
    const keep = new Set<Digest>();
    const queue: Digest[] = opts.deleteUntagged ? [...tagged] : [...revisions];
    while (queue.length) {
      const d = queue.pop()!;
      if (keep.has(d)) continue;
      const m = await store.getManifest(name, d);
      if (!m) continue;
      keep.add(d);
      marked.add(d);
      try {
        const refs = parseManifest(m.bytes, m.mediaType);
        for (const b of refs.blobs) marked.add(b);
        queue.push(...refs.manifests);
      } catch {
        // A manifest that does not parse keeps only itself.
      }
      for (const r of await store.referrers(name, d)) queue.push(r.digest);
    }
    for (const d of revisions) {
      if (keep.has(d)) continue;
      opts.report(`${verb} manifest ${name}@${d}\n`);
      result.manifests.push({ name, digest: d });
      if (!opts.dryRun) await store.deleteManifest(name, d);
    }
  }

  const swept = new Set<Digest>();
  for (const hex of (await driver.list(BLOBS)).sort()) {
    const d = hexDigest(hex);
    if (!isDigest(d) || marked.has(d)) continue;
    const size = (await driver.stat(layout.blob(d)))?.size ?? 0;
    opts.report(`${verb} blob ${d} (${size} bytes)\n`);
    result.blobs.push({ digest: d, size });
    result.bytes += size;
    swept.add(d);
    if (!opts.dryRun) await driver.delete(layout.blob(d));
  }

  if (!opts.dryRun) {
    // Links to swept blobs would make HEAD answer for bytes that are gone.
    for (const name of repositories) {
      for (const hex of await driver.list(layout.layers(name))) {
        const d = hexDigest(hex);
        if (isDigest(d) && (swept.has(d) || !(await store.hasBlobData(d)))) await driver.delete(layout.layerLink(name, d));
      }
    }
  }
  return result;
}
