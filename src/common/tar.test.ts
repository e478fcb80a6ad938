import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile, readFile, mkdir, symlink, link, lstat, readlink, readdir } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from './errors.ts';
import { readTar, writeTar } from './tar.ts';
import type { TarHeader, TarWriteEntry } from './tar.ts';

interface Read {
  header: TarHeader;
  data: Buffer;
}

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of it) parts.push(c);
  return Buffer.concat(parts);
}

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

async function readAll(source: AsyncIterable<Buffer | Uint8Array>): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readTar(source)) out.push({ header: e.header, data: await collect(e.body) });
  return out;
}

async function assertInvalid(p: Promise<unknown>, match?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isBerthError(e, 'InvalidArgument'), `expected InvalidArgument, got ${String(e)}`);
    if (match) assert.match((e as Error).message, match);
    return true;
  });
}

/** A raw ustar header block, for crafting archives by hand. */
function rawHeader(name: string, typeflag: string, size: number, opts: { magic?: string } = {}): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 100);
  b.write('0000644\0', 100);
  b.write('0000000\0', 108);
  b.write('0000000\0', 116);
  b.write(size.toString(8).padStart(11, '0') + '\0', 124);
  b.write('00000000001\0', 136);
  b.write(typeflag, 156, 1, 'latin1');
  b.write(opts.magic ?? 'ustar\x0000', 257, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return b;
}

function padTo512(b: Buffer): Buffer {
  const pad = (512 - (b.length % 512)) % 512;
  return Buffer.concat([b, Buffer.alloc(pad)]);
}

function paxRecords(kv: Record<string, string>): Buffer {
  return Buffer.concat(
    Object.entries(kv).map(([k, v]) => {
      const rest = Buffer.byteLength(k) + Buffer.byteLength(v) + 3;
      let len = rest + String(rest).length;
      if (String(len).length !== String(rest).length) len = rest + String(len).length;
      return Buffer.from(`${len} ${k}=${v}\n`);
    }),
  );
}

const long101 = 'd'.repeat(60) + '/' + 'e'.repeat(40) + '/' + 'f'.repeat(50); // > 100, splittable
const long300 = Array.from({ length: 6 }, (_, i) => String(i).repeat(49)).join('/') + '/leaf.txt'; // > 255
const unicode = 'ünïcødé/日本語ファイル-🚀.txt';

const sample: TarWriteEntry[] = [
  { header: { name: 'dir/', type: 'directory', mode: 0o1755, mtime: 1_700_000_000 } },
  { header: { name: 'dir/empty', type: 'file', mode: 0o600, uid: 1000, gid: 1000, uname: 'alice', gname: 'staff' }, body: Buffer.alloc(0) },
  { header: { name: 'dir/hello.txt', type: 'file', mode: 0o4755, mtime: 1_600_000_000.25 }, body: Buffer.from('hello world\n') },
  { header: { name: long101, type: 'file' }, body: Buffer.from('long101') },
  { header: { name: long300, type: 'file', mode: 0o640 }, body: Buffer.from('long300') },
  { header: { name: unicode, type: 'file', uname: 'ñame', gname: 'g'.repeat(40) }, body: Buffer.from('unicode') },
  { header: { name: 'bigid', type: 'file', uid: 3_000_000, gid: 4_000_000_000 }, body: Buffer.from('ids') },
  {
    header: {
      name: 'xattrs',
      type: 'file',
      xattrs: { 'user.comment': Buffer.from('some value'), 'user.bin': Buffer.from([0, 1, 2, 255, 10, 61]), 'security.capability': Buffer.from([1, 0, 0, 2]) },
    },
    body: Buffer.from('x'),
  },
  { header: { name: 'link-short', type: 'symlink', linkname: '../target' } },
  { header: { name: 'link-long', type: 'symlink', linkname: '/' + 't'.repeat(150) } },
  { header: { name: 'hard', type: 'hardlink', linkname: 'dir/hello.txt' } },
  { header: { name: 'hard-long', type: 'hardlink', linkname: long300 } },
  { header: { name: 'fifo', type: 'fifo', mode: 0o644 } },
  { header: { name: 'dev/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 } },
  { header: { name: 'dev/sda', type: 'block', devmajor: 8, devminor: 0, mode: 0o660 } },
  { header: { name: 'streamed', type: 'file', size: 70_000 }, body: chunked(Buffer.alloc(70_000, 7), 4096) },
];

function freshSample(): TarWriteEntry[] {
  // The streamed body can only be consumed once.
  return sample.map((e) => (e.header.name === 'streamed' ? { ...e, body: chunked(Buffer.alloc(70_000, 7), 4096) } : e));
}

describe('tar round trip', () => {
  test('reads back what it wrote, whatever the chunking', async () => {
    const bytes = await collect(writeTar(freshSample()));
    assert.equal(bytes.length % 512, 0);
    for (const size of [1, 7, 511, 512, 513, 65536, bytes.length]) {
      const got = await readAll(chunked(bytes, size));
      assert.deepEqual(
        got.map((g) => g.header.name),
        sample.map((s) => s.header.name),
        `chunk size ${size}`,
      );
      const by = new Map(got.map((g) => [g.header.name, g]));
      assert.equal(by.get('dir/')!.header.type, 'directory');
      assert.equal(by.get('dir/')!.header.mode, 0o1755);
      assert.equal(by.get('dir/')!.header.mtime, 1_700_000_000);
      const empty = by.get('dir/empty')!;
      assert.equal(empty.header.size, 0);
      assert.deepEqual([empty.header.uid, empty.header.gid, empty.header.uname, empty.header.gname], [1000, 1000, 'alice', 'staff']);
      const hello = by.get('dir/hello.txt')!;
      assert.equal(hello.data.toString(), 'hello world\n');
      assert.equal(hello.header.mode, 0o4755);
      assert.equal(hello.header.mtime, 1_600_000_000.25);
      assert.equal(by.get(long101)!.data.toString(), 'long101');
      assert.equal(by.get(long300)!.data.toString(), 'long300');
      assert.equal(by.get(long300)!.header.mode, 0o640);
      const u = by.get(unicode)!;
      assert.equal(u.data.toString(), 'unicode');
      assert.equal(u.header.uname, 'ñame');
      assert.equal(u.header.gname, 'g'.repeat(40));
      assert.deepEqual([by.get('bigid')!.header.uid, by.get('bigid')!.header.gid], [3_000_000, 4_000_000_000]);
      const x = by.get('xattrs')!.header.xattrs;
      assert.deepEqual(Object.keys(x).sort(), ['security.capability', 'user.bin', 'user.comment']);
      assert.deepEqual(x['user.bin'], Buffer.from([0, 1, 2, 255, 10, 61]));
      assert.equal(x['user.comment'].toString(), 'some value');
      assert.equal(by.get('link-short')!.header.linkname, '../target');
      assert.equal(by.get('link-long')!.header.linkname, '/' + 't'.repeat(150));
      assert.equal(by.get('hard')!.header.type, 'hardlink');
      assert.equal(by.get('hard')!.header.linkname, 'dir/hello.txt');
      assert.equal(by.get('hard-long')!.header.linkname, long300);
      assert.equal(by.get('fifo')!.header.type, 'fifo');
      assert.deepEqual([by.get('dev/null')!.header.type, by.get('dev/null')!.header.devmajor, by.get('dev/null')!.header.devminor], ['char', 1, 3]);
      assert.deepEqual([by.get('dev/sda')!.header.type, by.get('dev/sda')!.header.devmajor], ['block', 8]);
      assert.ok(by.get('streamed')!.data.equals(Buffer.alloc(70_000, 7)));
    }
  });

  test('output is deterministic', async () => {
    const a = await collect(writeTar(freshSample()));
    const b = await collect(writeTar(freshSample()));
    assert.ok(a.equals(b));
  });

  test('uses the ustar prefix for names up to 256 bytes and PAX beyond', async () => {
    const a = await collect(writeTar([{ header: { name: long101, type: 'file' }, body: Buffer.from('a') }]));
    assert.notEqual(a[156], 'x'.charCodeAt(0), 'no PAX header for a splittable name');
    const b = await collect(writeTar([{ header: { name: long300, type: 'file' }, body: Buffer.from('a') }]));
    assert.equal(b[156], 'x'.charCodeAt(0));
  });

  test('accepts Uint8Array chunks', async () => {
    const bytes = await collect(writeTar([{ header: { name: 'a', type: 'file' }, body: Buffer.from('abc') }]));
    async function* u8() {
      yield new Uint8Array(bytes.buffer, bytes.byteOffset, 700);
      yield new Uint8Array(bytes.buffer, bytes.byteOffset + 700, bytes.length - 700);
    }
    const got = await readAll(u8());
    assert.equal(got[0].data.toString(), 'abc');
  });

  test('skips bodies the consumer did not read, and refuses late reads', async () => {
    const bytes = await collect(
      writeTar([
        { header: { name: 'a', type: 'file' }, body: Buffer.alloc(5000, 1) },
        { header: { name: 'b', type: 'file' }, body: Buffer.alloc(3000, 2) },
        { header: { name: 'c', type: 'file' }, body: Buffer.from('ccc') },
      ]),
    );
    const names: string[] = [];
    let firstBody: AsyncIterable<Buffer> | undefined;
    for await (const e of readTar(chunked(bytes, 1000))) {
      names.push(e.header.name);
      if (e.header.name === 'a') firstBody = e.body;
      if (e.header.name === 'b') {
        // Read part of it only.
        for await (const c of e.body) {
          assert.equal(c[0], 2);
          break;
        }
      }
      if (e.header.name === 'c') assert.equal((await collect(e.body)).toString(), 'ccc');
    }
    assert.deepEqual(names, ['a', 'b', 'c']);
    await assert.rejects(collect(firstBody!));
  });

  test('writer refuses a body that does not match header.size', async () => {
    await assertInvalid(collect(writeTar([{ header: { name: 'a', type: 'file', size: 10 }, body: Buffer.from('abc') }])));
    await assertInvalid(collect(writeTar([{ header: { name: 'a', type: 'file', size: 10 }, body: chunked(Buffer.alloc(11), 4) }])));
    await assertInvalid(collect(writeTar([{ header: { name: 'a', type: 'file', size: 10 }, body: chunked(Buffer.alloc(9), 4) }])));
    await assertInvalid(collect(writeTar([{ header: { name: 'a', type: 'directory' }, body: Buffer.from('abc') }])));
  });

  test('a size of 8 GiB or more goes into PAX', async () => {
    const size = 8 * 1024 ** 3 + 5;
    const gen = writeTar([{ header: { name: 'huge', type: 'file', size }, body: (async function* () {})() }]);
    const first = (await gen.next()).value as Buffer;
    assert.equal(first[156], 'x'.charCodeAt(0));
    assert.match(first.subarray(512, 1024).toString(), new RegExp(`\\d+ size=${size}\\n`));
    // Its header alone (no body) reads as a truncated entry of that size.
    await assertInvalid(readAll(chunked(first, 512)), /truncated in entry "huge"/);
    for await (const e of readTar(chunked(first, 512))) {
      assert.equal(e.header.size, size);
      break;
    }
    await gen.return(undefined);
  });
});

describe('tar malformed input', () => {
  let bytes: Buffer;
  before(async () => {
    bytes = await collect(
      writeTar([
        { header: { name: 'foo/', type: 'directory' } },
        { header: { name: 'foo/bar', type: 'file' }, body: Buffer.alloc(2000, 0x61) },
        { header: { name: long300, type: 'file' }, body: Buffer.from('z') },
      ]),
    );
  });

  test('truncation anywhere is InvalidArgument', async () => {
    // Inside the second header, inside foo/bar's body, inside its padding, inside the PAX header, inside the last header.
    await assertInvalid(readAll(chunked(bytes.subarray(0, 700), 100)), /truncated header after entry "foo\/"/);
    await assertInvalid(readAll(chunked(bytes.subarray(0, 1024 + 1500), 100)), /truncated in entry "foo\/bar"/);
    await assertInvalid(readAll(chunked(bytes.subarray(0, 1024 + 2010), 100)), /truncated in entry "foo\/bar"/);
    await assertInvalid(readAll(chunked(bytes.subarray(0, 1024 + 2048 + 600), 100)), /truncated/);
    const paxEnd = bytes.length - 1024 - 1024; // before the last ustar header + its body
    await assertInvalid(readAll(chunked(bytes.subarray(0, paxEnd), 100)), /truncated/);
    for (let cut = 1; cut < bytes.length - 1024; cut += 97) {
      if (cut % 512 === 0) continue;
      await assertInvalid(readAll(chunked(bytes.subarray(0, cut), 333)));
    }
  });

  test('an archive without end-of-archive blocks is accepted', async () => {
    const got = await readAll(chunked(bytes.subarray(0, bytes.length - 1024), 4096));
    assert.equal(got.length, 3);
    const oneZero = await readAll(chunked(bytes.subarray(0, bytes.length - 512), 4096));
    assert.equal(oneZero.length, 3);
  });

  test('the source is read to its end after the end-of-archive blocks', async () => {
    let finished = false;
    async function* src() {
      yield bytes;
      yield Buffer.alloc(10240 - (bytes.length % 10240)); // record padding
      yield Buffer.from('trailing bytes that tar ignores');
      finished = true;
    }
    assert.equal((await readAll(src())).length, 3);
    assert.ok(finished);
  });

  test('a bad checksum is InvalidArgument', async () => {
    const bad = Buffer.from(bytes);
    bad[512 + 10] ^= 0x40; // in foo/bar's name
    await assertInvalid(readAll(chunked(bad, 4096)), /checksum after entry "foo\/"/);
  });

  test('garbage and compressed input are InvalidArgument', async () => {
    const garbage = Buffer.alloc(4096);
    for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) & 0xff;
    await assertInvalid(readAll(chunked(garbage, 1000)), /checksum/);
    const { gzipSync } = await import('node:zlib');
    await assertInvalid(readAll(chunked(gzipSync(bytes), 1000)), /gzip/);
    await assertInvalid(readAll(chunked(Buffer.from('hello'), 1000)), /truncated/);
  });

  test('a lone zero block followed by data is refused', async () => {
    const weird = Buffer.concat([bytes.subarray(0, 512), Buffer.alloc(512), bytes.subarray(512)]);
    await assertInvalid(readAll(chunked(weird, 4096)), /zero block/);
  });

  test('malformed PAX records are refused', async () => {
    const data = Buffer.from('999 path=x\n');
    const arch = Buffer.concat([rawHeader('pax', 'x', data.length), padTo512(data), rawHeader('a', '0', 0), Buffer.alloc(1024)]);
    await assertInvalid(readAll(chunked(arch, 4096)), /PAX/);
  });

  test('an unknown entry type is refused', async () => {
    const arch = Buffer.concat([rawHeader('a', 'Q', 0), Buffer.alloc(1024)]);
    await assertInvalid(readAll(chunked(arch, 4096)), /unsupported type/);
  });

  test('abort signal stops reading', async () => {
    const ac = new AbortController();
    const it = readTar(chunked(bytes, 100), { signal: ac.signal });
    const first = await it.next();
    assert.equal(first.value?.header.name, 'foo/');
    ac.abort(new Error('stop'));
    await assert.rejects(it.next(), /stop/);
  });
});

describe('tar hand-crafted formats', () => {
  test('V7 headers, GNU long names, PAX global headers', async () => {
    const v7 = rawHeader('old.txt', '\0', 3, { magic: '\0\0\0\0\0\0\0\0' });
    const v7dir = rawHeader('olddir/', '\0', 0, { magic: '\0\0\0\0\0\0\0\0' });
    const contiguous = rawHeader('contig', '7', 2);
    const longName = Buffer.from('L'.repeat(300) + '\0');
    const longLink = Buffer.from('K'.repeat(200) + '\0');
    const global = paxRecords({ uname: 'globaluser', mtime: '1234.5', 'SCHILY.xattr.user.g': 'gv', path: 'ignored', comment: 'commit abc' });
    const local = paxRecords({ uname: 'localuser' });
    const arch = Buffer.concat([
      v7,
      padTo512(Buffer.from('abc')),
      v7dir,
      contiguous,
      padTo512(Buffer.from('hi')),
      rawHeader('././@LongLink', 'L', longName.length, { magic: 'ustar  \0' }),
      padTo512(longName),
      rawHeader('././@LongLink', 'K', longLink.length, { magic: 'ustar  \0' }),
      padTo512(longLink),
      rawHeader('short', '2', 0, { magic: 'ustar  \0' }),
      rawHeader('pax_global_header', 'g', global.length),
      padTo512(global),
      rawHeader('g1', '0', 0),
      rawHeader('PaxHeaders/g2', 'x', local.length),
      padTo512(local),
      rawHeader('g2', '0', 0),
      Buffer.alloc(1024),
    ]);
    const got = await readAll(chunked(arch, 300));
    assert.deepEqual(
      got.map((g) => [g.header.name, g.header.type]),
      [
        ['old.txt', 'file'],
        ['olddir/', 'directory'],
        ['contig', 'file'],
        ['L'.repeat(300), 'symlink'],
        ['g1', 'file'],
        ['g2', 'file'],
      ],
    );
    assert.equal(got[0].data.toString(), 'abc');
    assert.equal(got[2].data.toString(), 'hi');
    assert.equal(got[3].header.linkname, 'K'.repeat(200));
    assert.equal(got[4].header.uname, 'globaluser');
    assert.equal(got[4].header.mtime, 1234.5);
    assert.equal(got[4].header.xattrs['user.g'].toString(), 'gv');
    assert.equal(got[5].header.uname, 'localuser');
    assert.equal(got[5].header.mtime, 1234.5);
  });
});

describe('tar interop with GNU tar', () => {
  let tmp: string;
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'berth-tar-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  test('GNU tar lists and extracts our output', async () => {
    const archive = join(tmp, 'ours.tar');
    const entries: TarWriteEntry[] = [
      { header: { name: 'root/', type: 'directory', mode: 0o755, mtime: 1_500_000_000 } },
      { header: { name: 'root/a.txt', type: 'file', mode: 0o4750, uid: 1234, gid: 2345, mtime: 1_600_000_000 }, body: Buffer.from('alpha') },
      { header: { name: 'root/' + long101, type: 'file', mtime: 1_600_000_000 }, body: Buffer.from('l1') },
      { header: { name: 'root/' + long300, type: 'file', mtime: 1_600_000_000 }, body: Buffer.from('l3') },
      { header: { name: 'root/' + unicode, type: 'file', mtime: 1_600_000_000 }, body: Buffer.from('uni') },
      { header: { name: 'root/big', type: 'file', uid: 3_000_000, gid: 3_000_001, mtime: 1_600_000_000 }, body: Buffer.from('b') },
      { header: { name: 'root/x', type: 'file', xattrs: { 'user.k': Buffer.from('v\0w') }, mtime: 1_600_000_000 }, body: Buffer.from('x') },
      { header: { name: 'root/sym', type: 'symlink', linkname: '/' + 'q'.repeat(130), mtime: 1_600_000_000 } },
      { header: { name: 'root/hard', type: 'hardlink', linkname: 'root/a.txt' } },
      { header: { name: 'root/empty', type: 'file', mtime: 1_600_000_000 }, body: Buffer.alloc(0) },
      { header: { name: 'root/fifo', type: 'fifo', mode: 0o600, mtime: 1_600_000_000 } },
    ];
    const bytes = await collect(writeTar(entries));
    await writeFile(archive, bytes);
    const listing = execFileSync('tar', ['-tvf', archive], { encoding: 'utf8' });
    for (const e of entries) assert.ok(listing.includes(e.header.name.replace(/\/$/, '')), `tar -tvf lists ${e.header.name}`);
    assert.match(listing, /1234\/2345/);
    assert.match(listing, /3000000\/3000001/);

    const out = join(tmp, 'out1');
    await mkdir(out);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '--same-owner', '-xpf', archive, '-C', out]);
    const r = join(out, 'root');
    assert.equal(await readFile(join(r, 'a.txt'), 'utf8'), 'alpha');
    const st = await lstat(join(r, 'a.txt'));
    assert.equal(st.mode & 0o7777, 0o4750);
    assert.deepEqual([st.uid, st.gid, st.mtimeMs / 1000], [1234, 2345, 1_600_000_000]);
    assert.equal((await lstat(join(r, 'hard'))).ino, st.ino);
    assert.equal(await readFile(join(r, long101), 'utf8'), 'l1');
    assert.equal(await readFile(join(r, long300), 'utf8'), 'l3');
    assert.equal(await readFile(join(r, unicode), 'utf8'), 'uni');
    assert.equal((await lstat(join(r, 'big'))).uid, 3_000_000);
    assert.equal(await readlink(join(r, 'sym')), '/' + 'q'.repeat(130));
    assert.equal((await lstat(join(r, 'empty'))).size, 0);
    assert.ok((await lstat(join(r, 'fifo'))).isFIFO());
    const xv = execFileSync('getfattr', ['--only-values', '-n', 'user.k', join(r, 'x')]);
    assert.deepEqual(xv, Buffer.from('v\0w'));
  });

  test('we read GNU tar output in posix, gnu, ustar and v7 formats', async () => {
    const src = join(tmp, 'src');
    await mkdir(join(src, 'tree', long101.split('/').slice(0, -1).join('/')), { recursive: true });
    await mkdir(join(src, 'tree', long300.split('/').slice(0, -1).join('/')), { recursive: true });
    await mkdir(join(src, 'tree', 'ünïcødé'), { recursive: true });
    await writeFile(join(src, 'tree', long101), 'l1');
    await writeFile(join(src, 'tree', long300), 'l3');
    await writeFile(join(src, 'tree', unicode), 'uni');
    await writeFile(join(src, 'tree', 'plain'), Buffer.alloc(100_000, 9));
    await writeFile(join(src, 'tree', 'empty'), '');
    await symlink('/' + 's'.repeat(140), join(src, 'tree', 'longsym'));
    await symlink('plain', join(src, 'tree', 'sym'));
    await link(join(src, 'tree', 'plain'), join(src, 'tree', 'hard'));
    execFileSync('mkfifo', [join(src, 'tree', 'fifo')]);
    execFileSync('setfattr', ['-n', 'user.color', '-v', 'blue', join(src, 'tree', 'plain')]);

    const names = async (dir: string, prefix = ''): Promise<string[]> => {
      const out: string[] = [];
      for (const d of await readdir(dir, { withFileTypes: true })) {
        const rel = prefix + d.name;
        out.push(rel);
        if (d.isDirectory()) out.push(...(await names(join(dir, d.name), rel + '/')));
      }
      return out;
    };
    const expected = (await names(join(src, 'tree'))).map((n) => 'tree/' + n).sort();

    for (const format of ['posix', 'gnu'] as const) {
      const archive = join(tmp, `gnu-${format}.tar`);
      execFileSync('tar', [`--format=${format}`, '--xattrs', '--owner=big:3000000', '--group=big:3000000', '-cf', archive, '-C', src, 'tree']);
      const got = await readAll(createReadStream(archive));
      const by = new Map(got.map((g) => [g.header.name.replace(/\/$/, ''), g]));
      assert.deepEqual([...by.keys()].filter((n) => n !== 'tree').sort(), expected, format);
      assert.equal(by.get('tree/' + long101)!.data.toString(), 'l1');
      assert.equal(by.get('tree/' + long300)!.data.toString(), 'l3');
      assert.equal(by.get('tree/' + unicode)!.data.toString(), 'uni');
      // Whichever of plain/hard comes first carries the data; the other links to it.
      const [first, second] = [by.get('tree/plain')!, by.get('tree/hard')!].sort((a, b) => (a.header.type === 'file' ? -1 : 1) - (b.header.type === 'file' ? -1 : 1));
      assert.equal(first.header.type, 'file');
      assert.ok(first.data.equals(Buffer.alloc(100_000, 9)));
      assert.equal(second.header.type, 'hardlink');
      assert.equal(second.header.linkname, first.header.name);
      assert.equal(first.header.uid, 3_000_000);
      assert.equal(first.header.gid, 3_000_000);
      assert.equal(by.get('tree/longsym')!.header.linkname, '/' + 's'.repeat(140));
      assert.equal(by.get('tree/sym')!.header.type, 'symlink');
      assert.equal(by.get('tree/fifo')!.header.type, 'fifo');
      assert.equal(by.get('tree/empty')!.header.size, 0);
      assert.equal(by.get('tree')!.header.type, 'directory');
      if (format === 'posix') assert.equal(first.header.xattrs['user.color']?.toString(), 'blue');
    }

    // ustar and v7 cannot hold the long names; archive the short ones.
    for (const format of ['ustar', 'v7'] as const) {
      const archive = join(tmp, `gnu-${format}.tar`);
      execFileSync('tar', [`--format=${format}`, '-cf', archive, '-C', join(src, 'tree'), 'plain', 'empty', 'sym', 'hard']);
      const got = await readAll(createReadStream(archive));
      assert.deepEqual(
        got.map((g) => [g.header.name, g.header.type, g.header.linkname]),
        [
          ['plain', 'file', ''],
          ['empty', 'file', ''],
          ['sym', 'symlink', 'plain'],
          ['hard', 'hardlink', 'plain'],
        ],
        format,
      );
      assert.ok(got[0].data.equals(Buffer.alloc(100_000, 9)));
    }
  });
});

describe('tar performance', () => {
  test('reads a 200 MB archive quickly', async (t) => {
    const total = 200 * 1024 * 1024;
    const big = Buffer.alloc(1024 * 1024, 0x5a);
    function* entries(): Generator<TarWriteEntry> {
      // 150 MB of 1 MiB files and 50 MB of 4 KiB files.
      for (let i = 0; i < 150; i++) yield { header: { name: `big/${i}`, type: 'file' }, body: big };
      for (let i = 0; i < 12800; i++) yield { header: { name: `small/${i}`, type: 'file' }, body: big.subarray(0, 4096) };
    }
    // Re-chunk the writer's output into 64 KiB pieces, as a file or socket would deliver it.
    async function* rechunk(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
      let pending: Buffer[] = [];
      let n = 0;
      for await (const c of src) {
        pending.push(c);
        n += c.length;
        if (n >= 65536) {
          const all = Buffer.concat(pending);
          let i = 0;
          for (; i + 65536 <= all.length; i += 65536) yield all.subarray(i, i + 65536);
          pending = [all.subarray(i)];
          n = all.length - i;
        }
      }
      if (n) yield Buffer.concat(pending);
    }
    // Pre-generate so that only the reader is timed.
    const chunks: Buffer[] = [];
    for await (const c of rechunk(writeTar(entries()))) chunks.push(c);
    const start = performance.now();
    let bytes = 0;
    let count = 0;
    for await (const e of readTar(chunked(Buffer.alloc(0), 1))) void e; // warm-up
    for await (const e of readTar((async function* () { yield* chunks; })())) {
      count++;
      for await (const c of e.body) bytes += c.length;
    }
    const secs = (performance.now() - start) / 1000;
    assert.equal(count, 150 + 12800);
    assert.ok(bytes >= total - 1024 * 1024);
    t.diagnostic(`readTar: ${(bytes / 1e6).toFixed(0)} MB of bodies, ${count} entries in ${secs.toFixed(2)} s = ${(bytes / 1e6 / secs).toFixed(0)} MB/s`);
  });
});

describe('tar lenientEnd (the docker CLI build context)', () => {
  const unpadded = async (): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    for await (const c of writeTar((async function* () {
      yield { header: { name: 'a.txt', type: 'file' as const, mode: 0o644, size: 3 }, body: Buffer.from('abc') };
      yield { header: { name: 'Dockerfile', type: 'file' as const, mode: 0o600, size: 13 }, body: Buffer.from('FROM busybox\n') };
    })())) chunks.push(c);
    const full = Buffer.concat(chunks);
    // Cut after the last body: no padding, no end blocks, as the docker CLI sends a context with -f outside it.
    return full.subarray(0, 512 + 512 + 512 + 13);
  };
  const read = async (buf: Buffer, lenientEnd: boolean) => {
    const out: string[] = [];
    for await (const e of readTar((async function* () { yield buf; })(), { lenientEnd })) {
      let body = '';
      for await (const c of e.body) body += c.toString();
      out.push(`${e.header.name}=${body}`);
    }
    return out;
  };
  test('an unpadded last entry is refused by default and accepted with lenientEnd', async () => {
    const buf = await unpadded();
    await assert.rejects(read(buf, false), /truncated in entry "Dockerfile"/);
    assert.deepEqual(await read(buf, true), ['a.txt=abc', 'Dockerfile=FROM busybox\n']);
  });
  test('a body cut short is refused even with lenientEnd', async () => {
    const buf = (await unpadded()).subarray(0, 512 + 512 + 512 + 5);
    await assert.rejects(read(buf, true), /truncated in entry "Dockerfile"/);
  });
});
