import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { sha256 } from '../common/digest.ts';
import { RegistryError } from './errors.ts';
import { FilesystemDriver } from './storage/filesystem.ts';
import { parseManifest, RegistryStore } from './store.ts';
import { Uploads } from './uploads.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

function fresh() {
  const driver = new FilesystemDriver(mkdtempSync(join(tmpdir(), 'berth-registry-store-')));
  const store = new RegistryStore(driver);
  return { driver, store, uploads: new Uploads(store) };
}

const code = (c: string) => (e: unknown) => e instanceof RegistryError && e.code === c;

async function blob(u: Uploads, name: string, data: string) {
  const id = await u.start(name);
  await u.append(name, id, Readable.from([Buffer.from(data)]));
  await u.finish(name, id, sha256(data));
  return { digest: sha256(data), size: Buffer.byteLength(data) };
}

describe('manifest parsing', () => {
  const desc = { mediaType: 'x', digest: sha256('c'), size: 1 };
  it('reads references from image manifests and indexes, skipping foreign layers', () => {
    const m = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: desc, layers: [{ ...desc, digest: sha256('l') }, { ...desc, digest: sha256('f'), urls: ['http://x'] }] })), OCI_MANIFEST);
    assert.deepEqual(m.blobs, [sha256('c'), sha256('l')]);
    assert.equal(m.artifactType, 'x', 'an image manifest without artifactType reports its config type');
    const i = parseManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [desc], subject: desc, artifactType: 'a/b' })), undefined);
    assert.equal(i.mediaType, OCI_INDEX);
    assert.deepEqual(i.manifests, [sha256('c')]);
    assert.equal(i.subject, sha256('c'));
    assert.equal(i.artifactType, 'a/b');
  });

  it('refuses what is not a manifest', () => {
    for (const [body, type] of [
      ['not json', OCI_MANIFEST], ['[]', OCI_MANIFEST], ['{"schemaVersion":1}', OCI_MANIFEST],
      [JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), OCI_MANIFEST],
      [JSON.stringify({ schemaVersion: 2, config: { digest: 'sha256:x', size: 1, mediaType: 'x' }, layers: [] }), OCI_MANIFEST],
      [JSON.stringify({ schemaVersion: 2, config: desc }), OCI_MANIFEST],
      [JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.artifact.manifest.v1+json', blobs: [] }), undefined],
    ] as const) {
      assert.throws(() => parseManifest(Buffer.from(body), type), code('MANIFEST_INVALID'), body);
    }
  });
});

describe('registry store', () => {
  it('links blobs per repository and stores manifests by tag and digest', async () => {
    const { store, uploads } = fresh();
    const config = await blob(uploads, 'r/a', '{}');
    const layer = await blob(uploads, 'r/a', 'layer');
    assert.equal(await store.blobSize('r/a', layer.digest), 5);
    assert.equal(await store.blobSize('r/b', layer.digest), undefined, 'not linked into r/b');
    const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'c', ...config }, layers: [{ mediaType: 'l', ...layer }] }));
    const { digest } = await store.putManifest('r/a', 'v1', bytes, OCI_MANIFEST);
    assert.equal(digest, sha256(bytes));
    for (const ref of ['v1', digest]) {
      const m = await store.getManifest('r/a', ref);
      assert.deepEqual([m?.digest, m?.mediaType, m?.bytes.equals(bytes)], [digest, OCI_MANIFEST, true]);
    }
    await assert.rejects(store.putManifest('r/b', 'v1', bytes, OCI_MANIFEST), code('MANIFEST_BLOB_UNKNOWN'));
    assert.deepEqual(await store.tags('r/a'), ['v1']);
    assert.equal(await store.tags('r/b'), undefined);
    assert.deepEqual(await store.catalog(), ['r/a']);
  });
});

describe('uploads', () => {
  it('continues a session in another process (no running hash) and checks the digest over every byte', async () => {
    const { driver, store, uploads } = fresh();
    const id = await uploads.start('u/x');
    assert.equal(await uploads.append('u/x', id, Readable.from([Buffer.from('hello ')]), { start: 0, end: 5, length: 6 }), 6);
    // A second Uploads over the same storage has no running hash: it re-reads the data.
    const other = new Uploads(new RegistryStore(driver));
    assert.equal(await other.size('u/x', id), 6);
    await assert.rejects(other.append('u/x', id, Readable.from([Buffer.from('x')]), { start: 3 }), (e) => e instanceof RegistryError && e.status === 416);
    assert.equal(await other.append('u/x', id, Readable.from([Buffer.from('world')]), { start: 6 }), 11);
    assert.equal(await uploads.finish('u/x', id, sha256('hello world')), 11);
    assert.equal(await store.blobSize('u/x', sha256('hello world')), 11);
    assert.equal(await uploads.size('u/x', id), undefined, 'the session is gone');
  });

  it('discards a session whose digest does not match, storing nothing', async () => {
    const { store, uploads } = fresh();
    const id = await uploads.start('u/y');
    await uploads.append('u/y', id, Readable.from([Buffer.from('abc')]));
    await assert.rejects(uploads.finish('u/y', id, sha256('abd')), code('DIGEST_INVALID'));
    assert.equal(await store.hasBlobData(sha256('abc')), false);
    assert.equal(await store.hasBlobData(sha256('abd')), false);
    assert.equal(await uploads.size('u/y', id), undefined);
    await assert.rejects(uploads.append('u/y', id, Readable.from([])), code('BLOB_UPLOAD_UNKNOWN'));
  });

  it('purges sessions older than the limit and keeps younger ones', async () => {
    const { uploads } = fresh();
    const id = await uploads.start('u/z');
    assert.equal(await uploads.purge(['u/z'], 60_000), 0);
    assert.equal(await uploads.size('u/z', id), 0);
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(await uploads.purge(['u/z'], 1), 1);
    assert.equal(await uploads.size('u/z', id), undefined);
  });
});
