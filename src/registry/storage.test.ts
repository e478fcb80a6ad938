import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemDriver } from './storage/filesystem.ts';
import { storageDriverSuite } from './storage/suite.ts';

storageDriverSuite('filesystem', async () => new FilesystemDriver(mkdtempSync(join(tmpdir(), 'berth-registry-fs-'))));

describe('filesystem driver: recover', () => {
  it('removes staging files a crash left behind, and keeps ones young enough to be in use', async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-registry-fs-'));
    const d = new FilesystemDriver(root);
    await d.putContent('x', 'staged through _tmp');
    mkdirSync(join(root, '_tmp'), { recursive: true });
    writeFileSync(join(root, '_tmp', 'old'), 'half');
    utimesSync(join(root, '_tmp', 'old'), new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
    writeFileSync(join(root, '_tmp', 'young'), 'in flight');
    assert.equal(await d.recover(), 1);
    assert.deepEqual(readdirSync(join(root, '_tmp')), ['young']);
    assert.equal((await d.getContent('x'))?.toString(), 'staged through _tmp');
  });
});
