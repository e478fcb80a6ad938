import { test, describe, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, mkdir, writeFile, readFile, readdir, lstat, readlink, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../common/errors.ts';
import { writeTar } from '../common/tar.ts';
import type { TarHeader, TarWriteEntry } from '../common/tar.ts';
import { applyLayer, cleanEntryPath, LayerChecker } from './layer.ts';

function layer(entries: TarWriteEntry[]): AsyncIterable<Buffer> {
  return writeTar(entries);
}

const file = (name: string, body: string | Buffer, h: Partial<TarHeader> = {}): TarWriteEntry => ({
  header: { name, type: 'file', mode: 0o644, mtime: 1_600_000_000, ...h },
  body: Buffer.isBuffer(body) ? body : Buffer.from(body),
});
const dir = (name: string, h: Partial<TarHeader> = {}): TarWriteEntry => ({ header: { name, type: 'directory', mode: 0o755, mtime: 1_600_000_000, ...h } });
const sym = (name: string, linkname: string): TarWriteEntry => ({ header: { name, type: 'symlink', linkname, mtime: 1_600_000_000 } });
const hard = (name: string, linkname: string): TarWriteEntry => ({ header: { name, type: 'hardlink', linkname } });
const whiteout = (name: string): TarWriteEntry => ({ header: { name, type: 'file', mode: 0o644 }, body: Buffer.alloc(0) });

function header(h: Partial<TarHeader> & { name: string }): TarHeader {
  return { type: 'file', mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', size: 0, mtime: 0, linkname: '', devmajor: 0, devminor: 0, xattrs: {}, ...h };
}

function isInvalid(e: unknown): boolean {
  assert.ok(isBerthError(e, 'InvalidArgument'), `expected InvalidArgument, got ${String(e)}`);
  return true;
}

/** Every path under `root` (except `skip`) with what it is, its size and mtime. */
async function snapshot(root: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (p === skip) continue;
      const st = await lstat(p);
      out.push(`${p} ${st.mode} ${st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(root);
  return out.sort();
}

describe('cleanEntryPath', () => {
  test('normalises', () => {
    const cases: [string, string][] = [
      ['a/b/c', 'a/b/c'],
      ['./a/b', 'a/b'],
      ['/a/b/', 'a/b'],
      ['//a//./b/../c', 'a/c'],
      ['./', ''],
      ['.', ''],
      ['/', ''],
      ['a/..', ''],
      ['a/b/../../c', 'c'],
      ['.wh.x', '.wh.x'],
      ['ünï/cødé', 'ünï/cødé'],
    ];
    for (const [input, want] of cases) assert.equal(cleanEntryPath(input), want, input);
  });
  test('refuses climbing above the root', () => {
    for (const bad of ['..', '../x', '/../x', 'a/../../x', './a/b/../../../etc/passwd', 'a\0b']) {
      assert.throws(() => cleanEntryPath(bad), isInvalid, bad);
    }
  });
});

describe('LayerChecker', () => {
  test('accepts an ordinary layer', () => {
    const c = new LayerChecker();
    for (const h of [
      header({ name: './', type: 'directory' }),
      header({ name: 'etc/', type: 'directory' }),
      header({ name: 'etc/passwd' }),
      header({ name: 'bin', type: 'symlink', linkname: 'usr/bin' }),
      header({ name: 'abs', type: 'symlink', linkname: '/etc' }),
      header({ name: 'usr/bin/sh', type: 'hardlink', linkname: 'etc/passwd' }),
      header({ name: 'etc/.wh.gone' }),
      header({ name: 'etc/.wh..wh..opq' }),
      header({ name: 'dev/wh', type: 'char', devmajor: 0, devminor: 0 }),
      header({ name: '/absolute/path/inside' }),
      // A symlink replaced by a directory may be written through again.
      header({ name: 'x', type: 'symlink', linkname: '/tmp' }),
      header({ name: 'x', type: 'directory' }),
      header({ name: 'x/y' }),
    ]) {
      c.check(h);
    }
  });

  const hostile: [string, TarHeader[]][] = [
    ['dot-dot', [header({ name: '../etc/passwd' })]],
    ['dot-dot inside', [header({ name: 'a/../../x' })]],
    ['hardlink out', [header({ name: 'h', type: 'hardlink', linkname: '../../etc/shadow' })]],
    ['hardlink to root', [header({ name: 'h', type: 'hardlink', linkname: './' })]],
    ['through absolute symlink', [header({ name: 'evil', type: 'symlink', linkname: '/etc' }), header({ name: 'evil/passwd' })]],
    ['through relative symlink', [header({ name: 'evil', type: 'symlink', linkname: '../../..' }), header({ name: 'evil/x' })]],
    ['deep through symlink', [header({ name: 'a/evil', type: 'symlink', linkname: '/' }), header({ name: './a/evil/b/c' })]],
    ['hardlink through symlink', [header({ name: 'evil', type: 'symlink', linkname: '/etc' }), header({ name: 'h', type: 'hardlink', linkname: 'evil/shadow' })]],
    [
      'through a hardlink to a symlink',
      [header({ name: 's', type: 'symlink', linkname: '/etc' }), header({ name: 'h', type: 'hardlink', linkname: 's' }), header({ name: 'h/passwd' })],
    ],
    ['whiteout through symlink', [header({ name: 'evil', type: 'symlink', linkname: '/etc' }), header({ name: 'evil/.wh.passwd' })]],
    ['block device', [header({ name: 'sda', type: 'block', devmajor: 8, devminor: 0 })]],
    ['block device 0:0', [header({ name: 'b', type: 'block' })]],
    ['char device', [header({ name: 'null', type: 'char', devmajor: 1, devminor: 3 })]],
    ['root as a file', [header({ name: './' })]],
    ['malformed whiteout', [header({ name: 'a/.wh...' })]],
  ];
  for (const [what, headers] of hostile) {
    test(`refuses: ${what}`, () => {
      const c = new LayerChecker();
      assert.throws(() => {
        for (const h of headers) c.check(h);
      }, (e: unknown) => isInvalid(e) && (e as Error).message.includes(JSON.stringify(headers.at(-1)!.name)));
    });
  }
});

describe('applyLayer', () => {
  let tmp: string;
  let root: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-layer-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });
  beforeEach(async () => {
    root = await mkdtemp(join(tmp, 'root-'));
  });

  test('writes files, directories, links, fifos with modes, owners, times and xattrs', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 17, 0xab);
    const res = await applyLayer(
      root,
      layer([
        dir('./', { mode: 0o755, mtime: 1_400_000_000 }),
        dir('usr/', { mtime: 1_500_000_000 }),
        dir('usr/bin/', { mode: 0o2755, uid: 10, gid: 20, mtime: 1_500_000_001 }),
        file('usr/bin/su', 'su!', { mode: 0o4755, uid: 0, gid: 0 }),
        file('usr/bin/own', 'own', { mode: 0o6750, uid: 1234, gid: 5678, mtime: 1_234_567_890.5 }),
        file('usr/bin/big', big),
        file('usr/bin/empty', ''),
        dir('tmp/', { mode: 0o1777, mtime: 1_500_000_002 }),
        sym('usr/bin/abs', '/etc/passwd'),
        sym('usr/bin/rel', '../lib/x'),
        hard('usr/bin/su2', 'usr/bin/su'),
        hard('usr/bin/abslink', '/usr/bin/own'),
        { header: { name: 'run/fifo', type: 'fifo', mode: 0o640, uid: 7, gid: 8, mtime: 1_300_000_000 } },
        { header: { name: 'x', type: 'file', xattrs: { 'user.color': Buffer.from('blue'), 'trusted.overlay.opaque': Buffer.from('y'), 'security.capability': Buffer.from([1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) } }, body: Buffer.from('x') },
        { header: { name: 'xd/', type: 'directory', mode: 0o700, xattrs: { 'user.d': Buffer.from([0, 255, 10]) } } },
        { header: { name: 'xs', type: 'symlink', linkname: 'x', xattrs: { 'user.nope': Buffer.from('1'), 'trusted.sym': Buffer.from('ok') } } },
        file('/abs/name', 'inside'),
        file('deep/implicit/parents', 'p'),
      ]),
    );
    assert.deepEqual(res, { size: 3 + 3 + big.length + 0 + 1 + 6 + 1, entries: 18 });
    const st = async (p: string) => lstat(join(root, p));

    assert.equal((await st('usr/bin/su')).mode & 0o7777, 0o4755);
    const own = await st('usr/bin/own');
    assert.deepEqual([own.mode & 0o7777, own.uid, own.gid, own.mtimeMs], [0o6750, 1234, 5678, 1_234_567_890_500]);
    assert.ok((await readFile(join(root, 'usr/bin/big'))).equals(big));
    assert.equal((await st('usr/bin/empty')).size, 0);
    const bin = await st('usr/bin');
    assert.deepEqual([bin.mode & 0o7777, bin.uid, bin.gid, bin.mtimeMs], [0o2755, 10, 20, 1_500_000_001_000]);
    assert.equal((await st('usr')).mtimeMs, 1_500_000_000_000, 'parent mtime restored after children were created');
    assert.equal((await st('.')).mtimeMs, 1_400_000_000_000, 'root mtime restored');
    const tmpDir = await st('tmp');
    assert.equal(tmpDir.mode & 0o7777, 0o1777);
    assert.equal(await readlink(join(root, 'usr/bin/abs')), '/etc/passwd');
    assert.equal(await readlink(join(root, 'usr/bin/rel')), '../lib/x');
    assert.equal((await st('usr/bin/abs')).mtimeMs, 1_600_000_000_000);
    assert.equal((await st('usr/bin/su2')).ino, (await st('usr/bin/su')).ino);
    assert.equal((await st('usr/bin/abslink')).ino, own.ino);
    const fifo = await st('run/fifo');
    assert.ok(fifo.isFIFO());
    assert.deepEqual([fifo.mode & 0o7777, fifo.uid, fifo.gid, fifo.mtimeMs], [0o640, 7, 8, 1_300_000_000_000]);
    const run = await st('run');
    assert.deepEqual([run.mode & 0o7777, run.uid, run.gid], [0o755, 0, 0], 'implicit parent is 0755 root');
    assert.equal((await st('deep/implicit')).mode & 0o7777, 0o755);
    assert.equal(await readFile(join(root, 'abs/name'), 'utf8'), 'inside');

    const getfattr = (p: string) => execFileSync('getfattr', ['-h', '--absolute-names', '-d', '-m', '-', '-e', 'hex', join(root, p)], { encoding: 'utf8' });
    const xa = getfattr('x');
    assert.match(xa, /user\.color=0x626c7565/);
    assert.match(xa, /security\.capability=0x0100000200200000/);
    assert.doesNotMatch(xa, /trusted\.overlay/, 'overlay xattrs from the tar are never set');
    assert.match(getfattr('xd'), /user\.d=0x00ff0a/);
    const xs = getfattr('xs');
    assert.match(xs, /trusted\.sym=0x6f6b/);
    assert.doesNotMatch(xs, /user\.nope/);
  });

  test('later entries win; a directory over a directory keeps its contents', async () => {
    await applyLayer(
      root,
      layer([
        dir('d/'),
        file('d/child', 'c'),
        dir('d/', { mode: 0o700, uid: 5 }),
        file('f', 'first'),
        file('f', 'second'),
        file('s', 'was a file'),
        sym('s', 'target'),
        dir('gone/'),
        file('gone/inner', 'x'),
        file('gone', 'now a file'),
        sym('l', '/somewhere'),
        file('l', 'replaced symlink, not written through'),
        file('tofifo', 'x'),
        { header: { name: 'tofifo', type: 'fifo' } },
        { header: { name: 'fifo2', type: 'fifo' } },
        file('fifo2', 'file wins over pending fifo'),
      ]),
    );
    const d = await lstat(join(root, 'd'));
    assert.deepEqual([d.mode & 0o7777, d.uid], [0o700, 5]);
    assert.equal(await readFile(join(root, 'd/child'), 'utf8'), 'c');
    assert.equal(await readFile(join(root, 'f'), 'utf8'), 'second');
    assert.equal(await readlink(join(root, 's')), 'target');
    assert.equal(await readFile(join(root, 'gone'), 'utf8'), 'now a file');
    assert.ok((await lstat(join(root, 'l'))).isFile());
    assert.ok((await lstat(join(root, 'tofifo'))).isFIFO());
    assert.equal(await readFile(join(root, 'fifo2'), 'utf8'), 'file wins over pending fifo');
  });

  describe('hostile layers', () => {
    const cases: [string, (sandbox: string) => TarWriteEntry[]][] = [
      ['../etc/passwd', () => [file('../etc/passwd', 'pwned')]],
      ['a/../../x', () => [dir('a/'), file('a/../../x', 'pwned')]],
      ['hardlink to ../../etc/shadow', () => [hard('h', '../../etc/shadow')]],
      ['hardlink to ../outside/secret', () => [hard('h', '../outside/secret')]],
      ['symlink evil -> /etc, then evil/passwd', () => [sym('evil', '/etc'), file('evil/passwd', 'pwned')]],
      ['symlink evil -> outside, then evil/secret', (s) => [sym('evil', join(s, 'outside')), file('evil/secret', 'pwned')]],
      ['symlink evil -> ../../.., then evil/x', () => [sym('evil', '../../..'), file('evil/x', 'pwned')]],
      ['symlink evil -> ../outside, then evil/new dir', () => [sym('evil', '../outside'), dir('evil/new/')]],
      ['hardlink through a symlink', (s) => [sym('evil', join(s, 'outside')), hard('h', 'evil/secret')]],
      ['symlink then hardlink to it, then through the hardlink', (s) => [sym('s', join(s, 'outside')), hard('h', 's'), file('h/secret', 'pwned')]],
      ['whiteout through a symlink', (s) => [sym('evil', join(s, 'outside')), whiteout('evil/.wh.secret')]],
      ['opaque through a symlink', (s) => [sym('evil', join(s, 'outside')), whiteout('evil/.wh..wh..opq')]],
      ['block device', () => [{ header: { name: 'sda', type: 'block', devmajor: 8, devminor: 0 } }]],
      ['char device', () => [{ header: { name: 'mem', type: 'char', devmajor: 1, devminor: 1 } }]],
    ];
    for (const [what, make] of cases) {
      test(what, async () => {
        const sandbox = await mkdtemp(join(tmp, 'sandbox-'));
        await mkdir(join(sandbox, 'outside'));
        await writeFile(join(sandbox, 'outside', 'secret'), 'secret');
        const target = join(sandbox, 'layer', 'a', 'b');
        await mkdir(target, { recursive: true });
        const before = await snapshot(sandbox, target);
        const passwd = await readFile('/etc/passwd');
        await assert.rejects(applyLayer(target, layer(make(sandbox))), isInvalid);
        assert.deepEqual(await snapshot(sandbox, target), before, 'nothing changed outside the layer dir');
        assert.ok((await readFile('/etc/passwd')).equals(passwd));
        assert.equal(await readFile(join(sandbox, 'outside', 'secret'), 'utf8'), 'secret');
      });
    }

    test('a symlink already in the directory is not followed either', async () => {
      const sandbox = await mkdtemp(join(tmp, 'sandbox-'));
      await mkdir(join(sandbox, 'outside'));
      const target = join(sandbox, 'layer');
      await mkdir(target);
      execFileSync('ln', ['-s', join(sandbox, 'outside'), join(target, 'pre')]);
      await assert.rejects(applyLayer(target, layer([file('pre/x', 'pwned')])), isInvalid);
      await assert.rejects(applyLayer(target, layer([hard('h', 'pre/x')])), isInvalid);
      assert.deepEqual(await readdir(join(sandbox, 'outside')), []);
    });

    test('truncated and corrupt layers are InvalidArgument', async () => {
      const chunks: Buffer[] = [];
      for await (const c of layer([file('a', Buffer.alloc(5000, 1)), file('b', 'b')])) chunks.push(c);
      const whole = Buffer.concat(chunks);
      await assert.rejects(applyLayer(root, (async function* () { yield whole.subarray(0, 3000); })()), isInvalid);
      const corrupt = Buffer.from(whole);
      corrupt[512 + 5120 + 3] ^= 1; // in b's header
      await assert.rejects(applyLayer(await mkdtemp(join(tmp, 'root-')), (async function* () { yield corrupt; })()), isInvalid);
    });
  });

  test('abort signal stops the apply', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(applyLayer(root, layer([file('a', 'a')]), { signal: ac.signal }), { name: 'AbortError' });
  });

  test('many whiteouts with long names are created in batches', async (t) => {
    const n = 2500;
    const long = 'w'.repeat(150);
    const entries: TarWriteEntry[] = [dir('many/')];
    for (let i = 0; i < n; i++) entries.push(whiteout(`many/.wh.${long}${i}`));
    const start = performance.now();
    const res = await applyLayer(root, layer(entries));
    const ms = performance.now() - start;
    assert.equal(res.entries, n + 1);
    const names = await readdir(join(root, 'many'));
    assert.equal(names.length, n);
    const st = await lstat(join(root, 'many', `${long}0`));
    assert.ok(st.isCharacterDevice());
    assert.equal(st.rdev, 0);
    assert.ok(!names.some((x) => x.startsWith('.wh.')));
    t.diagnostic(`${n} whiteouts in ${ms.toFixed(0)} ms`);
  });

  test('whiteouts and opaque directories work in a real overlay mount', async () => {
    const base = await mkdtemp(join(tmp, 'overlay-'));
    const [dir1, dir2, upper, work, merged] = ['l1', 'l2', 'upper', 'work', 'merged'].map((d) => join(base, d));
    for (const d of [dir1, dir2, upper, work, merged]) await mkdir(d);

    await applyLayer(
      dir1,
      layer([
        dir('etc/'),
        file('etc/keep', 'keep'),
        file('etc/gone', 'gone'),
        file('etc/same', 'lower same'),
        dir('opq/'),
        file('opq/lower1', 'l1'),
        dir('opq/sub/'),
        file('opq/sub/lower2', 'l2'),
        dir('dir-gone/'),
        file('dir-gone/x', 'x'),
        dir('redo/'),
        file('redo/old', 'old'),
        file('explicit', 'e'),
      ]),
    );
    const res2 = await applyLayer(
      dir2,
      layer([
        dir('etc/'),
        whiteout('etc/.wh.gone'),
        file('etc/same', 'upper same'),
        whiteout('etc/.wh.same'), // same-layer entry wins over its whiteout
        dir('opq/'),
        whiteout('opq/.wh..wh..opq'),
        file('opq/upper', 'u'),
        whiteout('.wh.dir-gone'),
        whiteout('.wh.redo'),
        file('redo/new', 'new'),
        { header: { name: 'explicit', type: 'char', devmajor: 0, devminor: 0 } },
        whiteout('.wh..wh.plnk'),
      ]),
    );
    assert.equal(res2.size, 'upper same'.length + 1 + 3);

    // What overlayfs reads in dir2.
    const gone = await lstat(join(dir2, 'etc/gone'));
    assert.ok(gone.isCharacterDevice() && gone.rdev === 0);
    assert.ok((await lstat(join(dir2, 'dir-gone'))).isCharacterDevice());
    assert.ok((await lstat(join(dir2, 'explicit'))).isCharacterDevice());
    assert.equal(await readFile(join(dir2, 'etc/same'), 'utf8'), 'upper same');
    const xattr = (p: string) => execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'trusted.overlay.opaque', p], { encoding: 'utf8' });
    assert.equal(xattr(join(dir2, 'opq')), 'y');
    assert.equal(xattr(join(dir2, 'redo')), 'y');
    const all = execFileSync('find', [dir2], { encoding: 'utf8' });
    assert.doesNotMatch(all, /\.wh\./, 'whiteouts are never written as files');

    execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${dir2}:${dir1},upperdir=${upper},workdir=${work}`, merged]);
    try {
      assert.deepEqual((await readdir(join(merged, 'etc'))).sort(), ['keep', 'same']);
      assert.equal(await readFile(join(merged, 'etc/same'), 'utf8'), 'upper same');
      await assert.rejects(stat(join(merged, 'etc/gone')), { code: 'ENOENT' });
      assert.deepEqual(await readdir(join(merged, 'opq')), ['upper']);
      await assert.rejects(stat(join(merged, 'dir-gone')), { code: 'ENOENT' });
      assert.deepEqual(await readdir(join(merged, 'redo')), ['new']);
      await assert.rejects(stat(join(merged, 'explicit')), { code: 'ENOENT' });
      assert.deepEqual((await readdir(merged)).sort(), ['etc', 'opq', 'redo']);
    } finally {
      execFileSync('umount', [merged]);
    }
  });
});
