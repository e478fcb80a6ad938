import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestDaemon } from '../helpers/daemon.ts';
import { type Entry, device, dir, dockerArchive, file, hardlink, symlink, tarBytes } from '../helpers/tars.ts';

/** Bad archives for `load` and `import`: each is refused, and the store is left exactly as it was. */
describe('hostile and corrupt input is refused without touching the store', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.startWithBusybox();
  });
  after(() => d.cleanup());

  const blobs = () => readdirSync(join(d.dataRoot, 'content', 'blobs', 'sha256')).sort();
  const images = () => d.berth(['images', '-a', '--no-trunc', '--format', '{{.ID}} {{.Repository}}:{{.Tag}}']).stdout;
  const ingestLeft = () => readdirSync(join(d.dataRoot, 'content', 'ingest'));

  async function refusedBoth(tar: Buffer, why: RegExp, verb: 'load' | 'import' = 'load') {
    const before = { blobs: blobs(), images: images() };
    for (const cli of ['berth', 'docker'] as const) {
      const args = verb === 'load' ? ['load'] : ['import', '-', 'hostile:1'];
      const r = cli === 'berth' ? d.berth(args, { input: tar }) : d.docker(args, { input: tar });
      assert.notEqual(r.code, 0, `${cli} ${verb} should refuse`);
      assert.match(r.stderr, why, `${cli}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.deepEqual(blobs(), before.blobs, `${cli} ${verb} left blobs behind`);
      assert.equal(images(), before.images);
      assert.deepEqual(ingestLeft(), []);
    }
  }

  const layerOf = async (entries: Entry[]) => (await dockerArchive([{ layers: [entries], tags: ['evil:1'] }])).tar;

  test('a layer entry that climbs out with ../', async () => {
    await refusedBoth(await layerOf([file('../../../tmp/berth-pwned', 'x')]), /invalid layer.*(escape|outside|\.\.)/i);
    await refusedBoth(await layerOf([dir('a/'), file('a/../../berth-pwned', 'x')]), /invalid layer/i);
    assert.ok(!existsSync('/tmp/berth-pwned'));
  });

  test('a write through an absolute symlink the layer made', async () => {
    await refusedBoth(await layerOf([symlink('evil', '/etc'), file('evil/passwd', 'root::0:0::/:/bin/sh\n')]), /invalid layer.*symlink/i);
    await refusedBoth(await layerOf([symlink('up', '../../..'), file('up/tmp/berth-pwned', 'x')]), /invalid layer/i);
  });

  test('a hard link to a file outside the root', async () => {
    await refusedBoth(await layerOf([hardlink('shadow', '../../../etc/shadow')]), /invalid layer/i);
  });

  test('device nodes in a layer', async () => {
    await refusedBoth(await layerOf([device('dev/sda', 8, 0, 'block')]), /invalid layer.*device/i);
    await refusedBoth(await layerOf([device('dev/mem', 1, 1)]), /invalid layer.*device/i);
  });

  test('archive members that point outside the archive', async () => {
    const good = await dockerArchive([{ layers: [[file('ok', 'ok')]], tags: ['ok:1'] }]);
    const withEvilLink = await dockerArchive([{ layers: [[file('ok', 'ok')]], tags: ['ok:1'] }], [symlink('escape', '/etc/passwd')]);
    await refusedBoth(withEvilLink.tar, /points outside the archive/);
    const withDotDot = await dockerArchive([{ layers: [[file('ok', 'ok')]], tags: ['ok:1'] }], [file('../outside', 'x')]);
    await refusedBoth(withDotDot.tar, /points outside the archive/);
    assert.ok(good.tar.length > 0);
  });

  test('a truncated archive, garbage, and a blob whose bytes do not match its name', async () => {
    const good = (await dockerArchive([{ layers: [[file('big', Buffer.alloc(200_000, 7))]], tags: ['t:1'] }])).tar;
    await refusedBoth(good.subarray(0, 150_000), /invalid tar|truncated|missing/i);
    await refusedBoth(Buffer.from('this is not a tar archive at all, just text'.repeat(40)), /invalid tar|not.*archive/i);
    const tampered = Buffer.from(good);
    const at = tampered.indexOf(Buffer.alloc(64, 7));
    tampered[at] = 8; // one byte of a layer changes; its name (the digest) does not
    await refusedBoth(tampered, /digest mismatch/);
  });

  test('a config whose diff IDs do not match the layers', async () => {
    const a = await dockerArchive([{ layers: [[file('x', '1')]], tags: ['m:1'], config: { rootfs: { type: 'layers', diff_ids: ['sha256:' + '0'.repeat(64)] } } }]);
    await refusedBoth(a.tar, /diff ID/);
  });

  test('import refuses hostile tarballs and non-tars too', async () => {
    await refusedBoth(await tarBytes([file('../../escape', 'x')]), /escape|outside|\.\./i, 'import');
    await refusedBoth(await tarBytes([symlink('l', '/'), file('l/etc/x', 'x')]), /symlink/i, 'import');
    await refusedBoth(await tarBytes([device('null', 1, 3)]), /device/i, 'import');
    await refusedBoth(Buffer.from('{"not": "a tar"}'), /import/i, 'import');
  });

  test('the store still works after all that', () => {
    const r = d.berth(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.equal(r.stdout.trim(), 'busybox:latest');
  });
});
