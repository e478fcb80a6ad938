import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { silentLogger } from '../../src/common/log.ts';
import { ContentStore } from '../../src/content/store.ts';
import { loadArchive } from '../../src/images/archive.ts';
import { ImageStore } from '../../src/images/store.ts';
import { Unpacker } from '../../src/images/unpack.ts';
import { openDatabase } from '../../src/metadata/db.ts';
import { GarbageCollector } from '../../src/metadata/gc.ts';
import { LeaseManager } from '../../src/metadata/leases.ts';
import { OverlaySnapshotter } from '../../src/snapshots/overlay.ts';
import { dir, dockerArchive, file, symlink } from '../helpers/tars.ts';

/** Image layers become real overlay snapshots: mounted, they show the image's files with whiteouts applied. */
describe('unpack into overlay snapshots', () => {
  let root: string;
  let stores: { content: ContentStore; images: ImageStore; snapshots: OverlaySnapshotter; unpacker: Unpacker; leases: LeaseManager; gc: GarbageCollector };
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'berth-unpack-'));
    const db = openDatabase(join(root, 'berth.db'));
    const content = new ContentStore(join(root, 'content'));
    await content.init();
    const snapshots = new OverlaySnapshotter(join(root, 'snapshots'), db);
    await snapshots.init();
    const leases = new LeaseManager();
    const images = new ImageStore(db, content);
    const gc = new GarbageCollector({ content, snapshots, leases, log: silentLogger, roots: [{ blobs: () => images.referencedBlobs(), snapshots: () => [] }] });
    stores = { content, images, snapshots, unpacker: new Unpacker({ content, snapshots, leases }), leases, gc };
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  test('three layers with a whiteout and an opaque directory, mounted with overlayfs', async () => {
    const arch = await dockerArchive([{
      tags: ['layers:3'],
      layers: [
        [dir('etc/'), file('etc/keep', 'keep'), file('etc/gone', 'gone'), dir('data/'), file('data/old', 'old'), file('bin/tool', '#!/bin/sh\n', 0o755), symlink('bin/alias', '/bin/tool')],
        [file('etc/.wh.gone', ''), dir('data/'), file('data/.wh..wh..opq', ''), file('data/new', 'new')],
        [file('etc/keep', 'changed'), file('setuid', 'x', 0o4755)],
      ],
    }]);
    const lease = stores.leases.create();
    const [img] = await loadArchive(Readable.from([arch.tar]), { content: stores.content, images: stores.images }, lease);
    lease.release();
    const top = await stores.unpacker.unpack(stores.images.layers(img.id));
    assert.equal(stores.snapshots.stat(top)?.kind, 'committed');
    // Unpacking again is free: every chain ID is already a snapshot.
    assert.equal(await stores.unpacker.unpack(stores.images.layers(img.id)), top);

    const mounts = await stores.snapshots.prepare('ctr-1', top);
    assert.equal(mounts[0].type, 'overlay');
    const target = join(root, 'mnt');
    mkdirSync(target);
    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', mounts[0].options.join(','), target]);
    try {
      assert.equal(readFileSync(join(target, 'etc/keep'), 'utf8'), 'changed');
      assert.ok(!existsSync(join(target, 'etc/gone')), 'the whiteout hides the lower file');
      assert.ok(!existsSync(join(target, 'data/old')), 'the opaque directory hides the lower contents');
      assert.equal(readFileSync(join(target, 'data/new'), 'utf8'), 'new');
      assert.equal(readFileSync(join(target, 'bin/tool'), 'utf8'), '#!/bin/sh\n');
      assert.equal(execFileSync('stat', ['-c', '%a', join(target, 'setuid')], { encoding: 'utf8' }).trim(), '4755');
      // The container's writes land in its own upper dir, never in the image layers.
      execFileSync('sh', ['-c', `echo w > ${join(target, 'etc/keep')}`]);
    } finally {
      execFileSync('umount', [target]);
    }
    const lowerKeep = join(stores.snapshots.dir(stores.snapshots.stat(top)!), 'fs', 'etc', 'keep');
    assert.equal(readFileSync(lowerKeep, 'utf8'), 'changed');
    await stores.snapshots.remove('ctr-1');
  });

  test('a layer whose bytes do not match its diff ID is refused at unpack', async () => {
    const arch = await dockerArchive([{ tags: ['tamper:1'], layers: [[file('f', 'original')]] }]);
    const lease = stores.leases.create();
    const [img] = await loadArchive(Readable.from([arch.tar]), { content: stores.content, images: stores.images }, lease);
    lease.release();
    const [layer] = stores.images.layers(img.id);
    // Corrupt the stored blob behind the store's back.
    execFileSync('sh', ['-c', `printf 'X' | dd of=${stores.content.path(layer.blob)} bs=1 seek=600 conv=notrunc 2>/dev/null`]);
    await assert.rejects(stores.unpacker.unpack([layer]), /expected diff ID/);
    assert.equal(stores.snapshots.list().filter((s) => s.key.startsWith('extract-')).length, 0, 'the failed extraction is cleaned up');
  });
});
