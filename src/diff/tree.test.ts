import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../common/errors.ts';
import { readTar, writeTar } from '../common/tar.ts';
import { extractInto, resolveInRoot } from './extract.ts';
import { applyLayer } from './layer.ts';
import { layerTar, treeTar } from './tree.ts';

async function collect(src: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of src) parts.push(c);
  return Buffer.concat(parts);
}

async function entries(tar: Buffer): Promise<{ name: string; type: string; body: string; linkname: string; mode: number }[]> {
  const out = [];
  for await (const e of readTar((async function* () { yield tar; })())) {
    const body = (await collect(e.body)).toString();
    out.push({ name: e.header.name, type: e.header.type, body, linkname: e.header.linkname, mode: e.header.mode });
  }
  return out;
}

describe('layerTar: an overlay upper dir as an OCI layer', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'berth-tree-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('whiteouts become .wh. files, opaque dirs get .wh..wh..opq, in sorted order, and apply back to the same tree', async () => {
    const upper = join(dir, 'upper');
    await mkdir(join(upper, 'etc', 'sub'), { recursive: true });
    await mkdir(join(upper, 'opq'));
    await writeFile(join(upper, 'etc', 'b.conf'), 'bee\n');
    await writeFile(join(upper, 'etc', 'a.conf'), 'ay\n');
    await writeFile(join(upper, 'opq', 'kept'), 'kept\n');
    await link(join(upper, 'etc', 'a.conf'), join(upper, 'etc', 'sub', 'hard'));
    await symlink('/etc/a.conf', join(upper, 'abs-link'));
    execFileSync('mknod', [join(upper, 'etc', 'gone'), 'c', '0', '0']);
    execFileSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', join(upper, 'opq')]);
    for (const p of ['etc/sub', 'etc', 'opq', '']) await utimes(join(upper, p), 1_600_000_000, 1_600_000_000);

    const tar = await collect(layerTar(upper));
    const got = await entries(tar);
    assert.deepEqual(got.map((e) => `${e.type} ${e.name}`), [
      'symlink abs-link', 'directory etc/', 'file etc/a.conf', 'file etc/b.conf', 'file etc/.wh.gone', 'directory etc/sub/', 'hardlink etc/sub/hard',
      'directory opq/', 'file opq/.wh..wh..opq', 'file opq/kept',
    ]);
    const names = got.map((e) => e.name);
    assert.ok(names.indexOf('etc/.wh.gone') < names.indexOf('etc/sub/'), 'sorted: .wh.gone is the name of "gone"');
    assert.equal(got.find((e) => e.name === 'etc/sub/hard')?.linkname, 'etc/a.conf');
    assert.equal(got.find((e) => e.name === 'abs-link')?.linkname, '/etc/a.conf');

    // Deterministic: the same tree gives the same digest.
    const again = await collect(layerTar(upper));
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    assert.equal(digest(again), digest(tar));

    // Applying the layer gives back the whiteout and the opaque marker.
    const back = join(dir, 'back');
    await mkdir(back);
    await applyLayer(back, (async function* () { yield tar; })());
    assert.equal(execFileSync('stat', ['-c', '%F %t:%T', join(back, 'etc', 'gone')]).toString().trim(), 'character special file 0:0');
    assert.match(execFileSync('getfattr', ['--absolute-names', '-n', 'trusted.overlay.opaque', '--only-values', join(back, 'opq')]).toString(), /^y/);
    assert.equal(await readFile(join(back, 'etc', 'sub', 'hard'), 'utf8'), 'ay\n');
    assert.equal(digest(await collect(layerTar(back))), digest(tar), 'the round trip is byte-identical');
  });

  test('skip and prunable leave out mount points and directories copied up only for them', async () => {
    const upper = join(dir, 'upper2');
    await mkdir(join(upper, 'etc'), { recursive: true });
    await mkdir(join(upper, 'proc'));
    await writeFile(join(upper, 'etc', 'hostname'), '');
    const tar = await collect(layerTar(upper, { skip: (rel) => rel === 'proc' || rel === 'etc/hostname', prunable: (rel) => rel === 'etc' }));
    assert.deepEqual(await entries(tar), []);
    await writeFile(join(upper, 'etc', 'real'), 'x');
    const tar2 = await collect(layerTar(upper, { skip: (rel) => rel === 'proc' || rel === 'etc/hostname', prunable: (rel) => rel === 'etc' }));
    assert.deepEqual((await entries(tar2)).map((e) => e.name), ['etc/', 'etc/real']);
  });

  test('treeTar names entries under the given name', async () => {
    const t = join(dir, 'named');
    await mkdir(join(t, 'd'), { recursive: true });
    await writeFile(join(t, 'd', 'f'), 'f');
    assert.deepEqual((await entries(await collect(treeTar(t, { name: 'top' })))).map((e) => e.name), ['top/', 'top/d/', 'top/d/f']);
    assert.deepEqual((await entries(await collect(treeTar(join(t, 'd', 'f'), { name: 'f' })))).map((e) => e.name), ['f']);
  });
});

describe('paths inside a container root', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'berth-root-'));
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc', 'issue'), 'inside\n');
    await symlink('/etc', join(root, 'etclink'));
    await symlink('../../../../../etc/issue', join(root, 'climb'));
    await symlink('loop2', join(root, 'loop1'));
    await symlink('loop1', join(root, 'loop2'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('absolute and climbing symlinks resolve inside the root', async () => {
    assert.equal(await resolveInRoot(root, '/etclink/issue'), `${root}/etc/issue`);
    assert.equal(await resolveInRoot(root, '/climb'), `${root}/etc/issue`);
    assert.equal(await resolveInRoot(root, '/climb', false), `${root}/climb`);
    assert.equal(await resolveInRoot(root, '/../../..'), root);
    assert.equal(await resolveInRoot(root, '/etclink/missing/deeper'), `${root}/etc/missing/deeper`);
    await assert.rejects(resolveInRoot(root, '/loop1'), (e) => isBerthError(e, 'InvalidArgument'));
  });

  test('extractInto writes through the container\'s own symlinks, inside the root', async () => {
    const tar = writeTar([{ header: { name: 'etclink/new', type: 'file', mode: 0o640 }, body: Buffer.from('n') }]);
    await extractInto(root, '/', tar);
    assert.equal(await readFile(join(root, 'etc', 'new'), 'utf8'), 'n');
    await assert.rejects(extractInto(root, '/', writeTar([{ header: { name: '../x', type: 'file' }, body: Buffer.from('') }])), (e) => isBerthError(e, 'InvalidArgument'));
    await assert.rejects(extractInto(root, '/etc/issue', writeTar([{ header: { name: 'x', type: 'file' }, body: Buffer.from('') }])), /not a directory/);
    await assert.rejects(extractInto(root, '/nope', writeTar([{ header: { name: 'x', type: 'file' }, body: Buffer.from('') }])), (e) => isBerthError(e, 'NotFound'));
    await assert.rejects(
      extractInto(root, '/', writeTar([{ header: { name: 'etc', type: 'file' }, body: Buffer.from('') }]), { noOverwriteDirNonDir: true }),
      /cannot overwrite directory/,
    );
  });
});
