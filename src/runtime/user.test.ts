import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { isBerthError } from '../common/errors.ts';
import { resolveInRoot, resolveUser } from './user.ts';

let root: string;
let hostile: string;

before(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-user-'));
  await mkdir(join(root, 'etc'));
  await writeFile(
    join(root, 'etc/passwd'),
    [
      'root:x:0:0:root:/root:/bin/sh',
      'daemon:x:1:1:daemon:/usr/sbin:/bin/false',
      '# a comment',
      'app:x:1000:1000:App:/home/app:/bin/sh',
      'broken:x::',
      'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
      '',
    ].join('\n'),
  );
  await writeFile(
    join(root, 'etc/group'),
    ['root:x:0:', 'wheel:x:10:root,app', 'app:x:1000:', 'audio:x:29:app', 'staff:x:50:', 'nogroup:x:65534:', ''].join('\n'),
  );
  // A rootfs whose /etc/passwd is an absolute symlink to a host file must read its own file, not the host's.
  hostile = await mkdtemp(join(tmpdir(), 'berth-user-hostile-'));
  await mkdir(join(hostile, 'etc'));
  await mkdir(join(hostile, 'real'));
  await writeFile(join(hostile, 'real/passwd'), 'evil:x:4242:4242::/:/bin/sh\n');
  await symlink('/real/passwd', join(hostile, 'etc/passwd'));
  await symlink('../../../../../../etc/shadow', join(hostile, 'etc/group'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(hostile, { recursive: true, force: true });
});

test('default is root with its supplementary groups', async () => {
  assert.deepEqual(await resolveUser(root, ''), { uid: 0, gid: 0, additionalGids: [10], home: '/root' });
});

test('by name', async () => {
  assert.deepEqual(await resolveUser(root, 'app'), { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/app' });
});

test('by uid, known and unknown', async () => {
  assert.deepEqual(await resolveUser(root, '1000'), { uid: 1000, gid: 1000, additionalGids: [10, 29], home: '/home/app' });
  assert.deepEqual(await resolveUser(root, '4321'), { uid: 4321, gid: 0, additionalGids: [], home: '/' });
});

test('uid:gid and name:group', async () => {
  assert.deepEqual(await resolveUser(root, '1000:50'), { uid: 1000, gid: 50, additionalGids: [], home: '/home/app' });
  assert.deepEqual(await resolveUser(root, '7:8'), { uid: 7, gid: 8, additionalGids: [], home: '/' });
  assert.deepEqual(await resolveUser(root, 'app:staff'), { uid: 1000, gid: 50, additionalGids: [], home: '/home/app' });
  assert.deepEqual(await resolveUser(root, 'daemon:0'), { uid: 1, gid: 0, additionalGids: [], home: '/usr/sbin' });
});

test('group-add by name and number', async () => {
  const u = await resolveUser(root, 'daemon', ['staff', '4000', 'wheel']);
  assert.deepEqual(u.additionalGids, [50, 4000, 10]);
});

test('unknown names are InvalidArgument with Docker’s message', async () => {
  await assert.rejects(
    resolveUser(root, 'ghost'),
    (e) => isBerthError(e, 'InvalidArgument') && e.message === 'unable to find user ghost: no matching entries in passwd file',
  );
  await assert.rejects(
    resolveUser(root, 'app:ghosts'),
    (e) => isBerthError(e, 'InvalidArgument') && e.message === 'unable to find group ghosts: no matching entries in group file',
  );
  await assert.rejects(resolveUser(root, '99999999999'), (e) => isBerthError(e, 'InvalidArgument'));
});

test('a rootfs without /etc/passwd still takes numeric users', async () => {
  const empty = await mkdtemp(join(tmpdir(), 'berth-user-empty-'));
  try {
    assert.deepEqual(await resolveUser(empty, ''), { uid: 0, gid: 0, additionalGids: [], home: '/' });
    assert.deepEqual(await resolveUser(empty, '10:20'), { uid: 10, gid: 20, additionalGids: [], home: '/' });
    await assert.rejects(resolveUser(empty, 'root'), (e) => isBerthError(e, 'InvalidArgument'));
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test('symlinks resolve inside the root', async () => {
  assert.equal(await resolveInRoot(hostile, '/etc/passwd'), join(hostile, 'real/passwd'));
  assert.equal(await resolveInRoot(hostile, '/etc/group'), join(hostile, 'etc/shadow'));
  assert.deepEqual(await resolveUser(hostile, 'evil'), { uid: 4242, gid: 4242, additionalGids: [], home: '/' });
});
