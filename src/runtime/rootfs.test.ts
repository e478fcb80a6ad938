import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isMounted, mountRootfs, unmountRootfs } from './rootfs.ts';

const skip = process.getuid?.() !== 0 ? 'needs root' : false;
let dir: string;

before(async () => {
  if (skip) return;
  dir = await mkdtemp('/tmp/berth-rootfs-test-');
  for (const d of ['l1', 'l2', 'upper', 'work', 'merged', 'view']) await mkdir(join(dir, d));
  await writeFile(join(dir, 'l1/a'), 'lower1');
  await writeFile(join(dir, 'l2/a'), 'lower2');
  await writeFile(join(dir, 'l2/b'), 'only2');
});

after(async () => {
  if (skip) return;
  await unmountRootfs(join(dir, 'merged'), true).catch(() => {});
  await unmountRootfs(join(dir, 'view'), true).catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

test('mounts an overlay from snapshot mount specs and unmounts it', { skip }, async () => {
  const target = join(dir, 'merged');
  await mountRootfs(
    [
      {
        type: 'overlay',
        source: 'overlay',
        options: ['index=off', `workdir=${join(dir, 'work')}`, `upperdir=${join(dir, 'upper')}`, `lowerdir=${join(dir, 'l1')}:${join(dir, 'l2')}`],
      },
    ],
    target,
  );
  assert.ok(await isMounted(target));
  assert.equal(await readFile(join(target, 'a'), 'utf8'), 'lower1', 'the first lowerdir is on top');
  assert.equal(await readFile(join(target, 'b'), 'utf8'), 'only2');
  await writeFile(join(target, 'c'), 'new');
  assert.equal(await readFile(join(dir, 'upper/c'), 'utf8'), 'new');
  await unmountRootfs(target);
  assert.ok(!(await isMounted(target)));
  assert.ok(!existsSync(join(target, 'a')));
  await unmountRootfs(target); // nothing mounted is fine
});

test('mounts a read-only bind (a one-layer view)', { skip }, async () => {
  const target = join(dir, 'view');
  await mountRootfs([{ type: 'bind', source: join(dir, 'l2'), options: ['rbind', 'ro'] }], target);
  assert.equal(await readFile(join(target, 'b'), 'utf8'), 'only2');
  await assert.rejects(writeFile(join(target, 'x'), 'no'), /EROFS/);
  await unmountRootfs(target);
  assert.ok(!(await isMounted(target)));
});
