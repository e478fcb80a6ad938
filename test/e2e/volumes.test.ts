import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { readTar, writeTar, type TarWriteEntry } from '../../src/common/tar.ts';
import { TestDaemon, busyboxRootfs, importBusybox } from '../helpers/daemon.ts';

const CLIS = ['berth', 'docker'] as const;

/** The busybox rootfs plus /data/hello.txt (uid 1000, 0640) in a 0750 /data owned by 1000, as one tarball. */
async function rootfsWithData(dir: string): Promise<string> {
  async function* entries(): AsyncGenerator<TarWriteEntry> {
    for await (const e of readTar(createReadStream(busyboxRootfs()))) {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(c);
      yield e.header.type === 'file' ? { header: e.header, body: Buffer.concat(parts) } : { header: e.header };
    }
    yield { header: { name: 'data/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000, mtime: 0 } };
    const body = Buffer.from('from the image\n');
    yield { header: { name: 'data/hello.txt', type: 'file', mode: 0o640, uid: 1000, gid: 1000, size: body.length, mtime: 0 }, body };
  }
  const parts: Buffer[] = [];
  for await (const c of writeTar(entries())) parts.push(c);
  const out = join(dir, 'rootfs-data.tar');
  writeFileSync(out, Buffer.concat(parts));
  return out;
}

/** A raw API call over the daemon's socket: status and parsed body. */
function api(d: TestDaemon, method: string, path: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: d.socket, method, path }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('volumes through berth and docker', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.start();
    importBusybox(d);
    const tar = await rootfsWithData(d.dir);
    const r = d.berth(['import', '--change', 'VOLUME /data', '--change', 'CMD ["sh"]', tar, 'withdata:latest']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    for (const id of d.berth(['ps', '-aq']).stdout.trim().split('\n').filter(Boolean)) d.berth(['rm', '-f', '-v', id]);
    await d.cleanup();
  });
  const cli = (which: (typeof CLIS)[number], args: string[], opts?: Parameters<TestDaemon['berth']>[1]) => (which === 'berth' ? d.berth(args, opts) : d.docker(args, opts));

  test('create, ls, inspect and rm, with labels, filters and formats', () => {
    for (const c of CLIS) {
      const name = `vol-${c}`;
      const r = cli(c, ['volume', 'create', '--label', 'team=blue', '--label', 'tier', name]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${name}\n`);
      const ls = cli(c, ['volume', 'ls']);
      assert.equal(ls.code, 0, ls.stderr);
      assert.match(ls.stdout, /^DRIVER\s+VOLUME NAME\n/);
      assert.match(ls.stdout, new RegExp(`^local\\s+${name}$`, 'm'));
      assert.equal(cli(c, ['volume', 'ls', '-q', '--filter', 'label=team=blue', '--filter', `name=${name}`]).stdout, `${name}\n`);
      assert.equal(cli(c, ['volume', 'ls', '-q', '--filter', 'label=team=red']).stdout, '');
      assert.match(cli(c, ['volume', 'ls', '-q', '--filter', 'dangling=true']).stdout, new RegExp(`^${name}$`, 'm'));
      // docker joins the labels in Go's map order, which is random: compare them as a set.
      const [vname, vdriver, vlabels] = cli(c, ['volume', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Labels}}', '--filter', `name=^${name}$`]).stdout.trim().split(' ');
      assert.deepEqual([vname, vdriver, vlabels.split(',').sort().join(',')], [name, 'local', 'team=blue,tier=']);
      const [v] = JSON.parse(cli(c, ['volume', 'inspect', name]).stdout);
      assert.equal(v.Name, name);
      assert.equal(v.Driver, 'local');
      assert.equal(v.Scope, 'local');
      assert.deepEqual(v.Labels, { team: 'blue', tier: '' });
      assert.equal(v.Mountpoint, join(d.dataRoot, 'volumes', name, '_data'));
      assert.match(v.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.ok(existsSync(v.Mountpoint));
      assert.equal(cli(c, ['volume', 'inspect', '--format', '{{.Name}}:{{.Driver}}', name]).stdout, `${name}:local\n`);
      // Creating an existing volume again is not an error.
      assert.equal(cli(c, ['volume', 'create', name]).code, 0);
      assert.equal(cli(c, ['volume', 'rm', name]).stdout, `${name}\n`);
      assert.ok(!existsSync(v.Mountpoint), 'the files went with the volume');
      const missing = cli(c, ['volume', 'inspect', name]);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, new RegExp(`get ${name}: no such volume`));
      const rmMissing = cli(c, ['volume', 'rm', name]);
      assert.equal(rmMissing.code, 1);
      assert.match(rmMissing.stderr, new RegExp(`get ${name}: no such volume`));
      const bad = cli(c, ['volume', 'create', 'a']);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /volume name is too short, names should be at least two alphanumeric characters/);
      const badOpt = cli(c, ['volume', 'create', '-o', 'colour=red', 'badopt']);
      assert.notEqual(badOpt.code, 0);
      assert.match(badOpt.stderr, /invalid option: "colour"/);
    }
    assert.match(d.docker(['volume', 'create', '-d', 'nfs-plugin', 'plug']).stderr, /plugin "nfs-plugin" not found/);
  });

  test('a named volume keeps data across containers; run creates it on first use', () => {
    for (const c of CLIS) {
      const name = `data-${c}`;
      const w = cli(c, ['run', '--rm', '-v', `${name}:/data`, 'busybox', 'sh', '-c', `echo written by ${c} > /data/f; chown 5:6 /data/f`]);
      assert.equal(w.code, 0, w.stderr);
      assert.equal(JSON.parse(cli(c, ['volume', 'inspect', name]).stdout)[0].Name, name, 'run created the volume');
      const r = cli(c, ['run', '--rm', '--mount', `type=volume,src=${name},dst=/mnt/v`, 'busybox', 'sh', '-c', 'cat /mnt/v/f; stat -c %u:%g /mnt/v/f']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `written by ${c}\n5:6\n`);
      const ro = cli(c, ['run', '--rm', '--mount', `type=volume,source=${name},target=/v,readonly`, 'busybox', 'sh', '-c', 'echo x > /v/g 2>/dev/null && echo wrote; cat /v/f']);
      assert.equal(ro.stdout, `written by ${c}\n`, 'a readonly volume refuses writes');
      const roV = cli(c, ['run', '--rm', '-v', `${name}:/v:ro`, 'busybox', 'sh', '-c', 'touch /v/g 2>/dev/null || echo refused']);
      assert.equal(roV.stdout, 'refused\n');
      assert.equal(cli(c, ['volume', 'rm', name]).code, 0);
    }
  });

  test('container inspect shows Mounts; ps filters by volume; volume rm of a volume in use is 409', async () => {
    const host = mkdtempSync(join(d.dir, 'bind-'));
    const id = d.berth(['create', '--name', 'user1', '-v', 'shared:/shared', '-v', `${host}:/h:ro`, 'busybox', 'true']).stdout.trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    const [c] = JSON.parse(d.docker(['inspect', 'user1']).stdout);
    const mounts = [...c.Mounts].sort((a: { Destination: string }, b: { Destination: string }) => a.Destination.localeCompare(b.Destination));
    assert.deepEqual(mounts, [
      { Type: 'bind', Source: host, Destination: '/h', Mode: 'ro', RW: false, Propagation: 'rprivate' },
      { Type: 'volume', Name: 'shared', Source: join(d.dataRoot, 'volumes', 'shared', '_data'), Destination: '/shared', Driver: 'local', Mode: 'z', RW: true, Propagation: '' },
    ]);
    for (const c of CLIS) {
      assert.equal(cli(c, ['ps', '-a', '--filter', 'volume=shared', '--format', '{{.Names}}']).stdout, 'user1\n');
      assert.equal(cli(c, ['ps', '-a', '--filter', 'volume=/shared', '--format', '{{.Names}}']).stdout, 'user1\n');
      assert.equal(cli(c, ['ps', '-a', '--filter', 'volume=other', '--format', '{{.Names}}']).stdout, '');
      assert.match(cli(c, ['ps', '-a', '--filter', 'volume=shared', '--format', '{{.Mounts}}']).stdout, /(^|,)shared(,|$)/m);
      const rm = cli(c, ['volume', 'rm', 'shared']);
      assert.equal(rm.code, 1);
      assert.equal(rm.stderr, `Error response from daemon: remove shared: volume is in use - [${id}]\n`);
    }
    const res = await api(d, 'DELETE', '/v1.50/volumes/shared');
    assert.equal(res.status, 409);
    assert.match(res.body.message, /volume is in use/);
    assert.match(d.docker(['volume', 'ls', '-q', '--filter', 'dangling=false']).stdout, /^shared$/m);
    assert.equal(d.docker(['rm', 'user1']).code, 0);
    assert.equal(d.docker(['volume', 'rm', 'shared']).code, 0, 'free once its container is gone; rm without -v keeps named volumes');
  });

  test('an anonymous volume from the image VOLUME gets the image files, owners and modes; rm -v removes it', () => {
    for (const c of CLIS) {
      const r = cli(c, ['run', '--name', `anon-${c}`, 'withdata', 'sh', '-c', 'cat /data/hello.txt; stat -c "%u:%g %a" /data/hello.txt /data; echo mine > /data/added']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'from the image\n1000:1000 640\n1000:1000 750\n');
      const [info] = JSON.parse(cli(c, ['inspect', `anon-${c}`]).stdout);
      assert.equal(info.Mounts.length, 1);
      const m = info.Mounts[0];
      assert.equal(m.Type, 'volume');
      assert.equal(m.Destination, '/data');
      assert.match(m.Name, /^[a-f0-9]{64}$/);
      assert.equal(m.Source, join(d.dataRoot, 'volumes', m.Name, '_data'));
      assert.equal(readFileSync(join(m.Source, 'added'), 'utf8'), 'mine\n', 'the container wrote into the volume');
      const [v] = JSON.parse(cli(c, ['volume', 'inspect', m.Name]).stdout);
      assert.deepEqual(v.Labels, { 'com.docker.volume.anonymous': '' });
      // Restarting the container keeps the volume's files; copy-up is for an empty volume only.
      assert.equal(cli(c, ['start', '-a', `anon-${c}`]).code, 0);
      assert.equal(cli(c, ['rm', '-v', `anon-${c}`]).code, 0);
      assert.notEqual(cli(c, ['volume', 'inspect', m.Name]).code, 0, 'rm -v removed the anonymous volume');
      assert.ok(!existsSync(m.Source));
    }
    // A named volume mounted empty over the image's /data is filled from it too; `-v /path` is anonymous; --rm removes anonymous volumes.
    const r = d.docker(['run', '--rm', '-v', 'filled:/data', '-v', '/scratch', 'withdata', 'sh', '-c', 'cat /data/hello.txt; echo x > /scratch/x']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'from the image\n');
    assert.deepEqual(d.berth(['volume', 'ls', '-q']).stdout.trim().split('\n').filter((n) => n !== ''), ['filled'], '--rm removed the anonymous volume, kept the named one');
    const nocopy = d.berth(['run', '--rm', '-v', 'empty-nc:/data:nocopy', 'withdata', 'ls', '-A', '/data']);
    assert.equal(nocopy.stdout, '', 'nocopy mounts the volume empty');
    d.berth(['volume', 'rm', 'filled', 'empty-nc']);
  });

  test('--volumes-from shares another container\'s volumes, read-only when asked', () => {
    assert.equal(d.berth(['create', '--name', 'vf-src', '-v', 'vf-named:/named', 'withdata', 'true']).code, 0);
    for (const c of CLIS) {
      const r = cli(c, ['run', '--rm', '--volumes-from', 'vf-src', 'busybox', 'sh', '-c', `cat /data/hello.txt; echo ${c} >> /named/log`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'from the image\n');
      const ro = cli(c, ['run', '--rm', '--volumes-from', 'vf-src:ro', 'busybox', 'sh', '-c', 'touch /named/x 2>/dev/null || echo refused']);
      assert.equal(ro.stdout, 'refused\n');
    }
    assert.equal(d.berth(['run', '--rm', '-v', 'vf-named:/n', 'busybox', 'cat', '/n/log']).stdout, 'berth\ndocker\n');
    // (A 404 from create makes the docker CLI try a pull first, as against Docker.)
    assert.match(d.berth(['run', '--rm', '--volumes-from', 'no-such', 'busybox', 'true']).stderr, /No such container: no-such/);
    const anon = JSON.parse(d.berth(['inspect', 'vf-src']).stdout)[0].Mounts.find((m: { Destination: string }) => m.Destination === '/data').Name;
    assert.equal(d.berth(['rm', '-v', 'vf-src']).code, 0);
    assert.notEqual(d.berth(['volume', 'inspect', anon]).code, 0, '--rm of the borrowers left the anonymous volume to its owner, whose rm -v removed it');
    assert.equal(d.berth(['volume', 'rm', 'vf-named']).code, 0);
  });

  test('volume prune removes unused anonymous volumes, and with --all the named ones too', () => {
    d.berth(['run', '--name', 'keeper', 'withdata', 'true']);
    d.berth(['run', '--name', 'gone', 'withdata', 'true']);
    d.berth(['volume', 'create', 'named-unused']);
    d.berth(['volume', 'create', '--label', 'keep=yes', 'named-labelled']);
    const gone = JSON.parse(d.berth(['inspect', 'gone']).stdout)[0].Mounts[0].Name;
    const kept = JSON.parse(d.berth(['inspect', 'keeper']).stdout)[0].Mounts[0].Name;
    d.berth(['rm', 'gone']);
    const p = d.docker(['volume', 'prune', '-f']);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(p.stdout, `Deleted Volumes:\n${gone}\n\nTotal reclaimed space: 15B\n`);
    const left = d.berth(['volume', 'ls', '-q']).stdout.trim().split('\n').sort();
    assert.deepEqual(left, [kept, 'named-labelled', 'named-unused'].sort());
    const declined = d.berth(['volume', 'prune', '-a'], { input: 'n\n' });
    assert.match(declined.stdout, /WARNING! This will remove all local volumes not used by at least one container\.\nAre you sure you want to continue\? \[y\/N\] /);
    assert.equal(d.berth(['volume', 'ls', '-q']).stdout.trim().split('\n').length, 3);
    const all = d.berth(['volume', 'prune', '-a', '-f', '--filter', 'label!=keep']);
    assert.equal(all.code, 0, all.stderr);
    assert.equal(all.stdout, 'Deleted Volumes:\nnamed-unused\n\nTotal reclaimed space: 0B\n');
    assert.equal(d.docker(['volume', 'prune', '-a', '-f']).stdout, 'Deleted Volumes:\nnamed-labelled\n\nTotal reclaimed space: 0B\n');
    assert.deepEqual(d.berth(['volume', 'ls', '-q']).stdout.trim().split('\n'), [kept], 'the volume in use stays');
    d.berth(['rm', '-v', 'keeper']);
    assert.equal(d.berth(['volume', 'ls', '-q']).stdout, '');
  });

  test('local driver options: a tmpfs volume and a bind of a host directory', () => {
    for (const c of CLIS) {
      const name = `tmp-${c}`;
      assert.equal(cli(c, ['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', '-o', 'o=size=10m', name]).code, 0);
      assert.deepEqual(JSON.parse(cli(c, ['volume', 'inspect', name]).stdout)[0].Options, { type: 'tmpfs', device: 'tmpfs', o: 'size=10m' });
      const r = cli(c, ['run', '--rm', '-v', `${name}:/t`, 'busybox', 'sh', '-c', 'grep " /t " /proc/mounts | cut -d" " -f3; df -k /t | tail -1 | awk "{print \\$2}"; echo hi > /t/x; cat /t/x']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'tmpfs\n10240\nhi\n');
      const data = join(d.dataRoot, 'volumes', name, '_data');
      assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${data} `), 'unmounted once no container uses it');
      assert.equal(cli(c, ['volume', 'rm', name]).code, 0);
    }
    const host = mkdtempSync(join(d.dir, 'device-'));
    writeFileSync(join(host, 'keep.txt'), 'host file\n');
    assert.equal(d.docker(['volume', 'create', '-o', 'type=none', '-o', 'o=bind', '-o', `device=${host}`, 'hostdir']).code, 0);
    const r = d.berth(['run', '--rm', '--mount', 'type=volume,src=hostdir,dst=/h', 'busybox', 'sh', '-c', 'cat /h/keep.txt; echo from container > /h/new.txt']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'host file\n');
    assert.equal(readFileSync(join(host, 'new.txt'), 'utf8'), 'from container\n');
    assert.equal(d.berth(['volume', 'rm', 'hostdir']).code, 0);
    assert.equal(readFileSync(join(host, 'keep.txt'), 'utf8'), 'host file\n', 'removing the volume leaves the host directory alone');
    // --mount volume-opt creates a volume with driver options.
    const o = d.berth(['run', '--rm', '--mount', 'type=volume,src=optvol,dst=/o,volume-opt=type=tmpfs,volume-opt=device=tmpfs', 'busybox', 'sh', '-c', 'grep " /o " /proc/mounts | cut -d" " -f3']);
    assert.equal(o.stdout, 'tmpfs\n', o.stderr);
    d.berth(['volume', 'rm', 'optvol']);
  });

  test('volumes, their data and a running container\'s tmpfs volume survive a daemon restart', async () => {
    assert.equal(d.berth(['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', 'rst-tmp']).code, 0);
    assert.equal(d.berth(['run', '--rm', '-v', 'rst-data:/d', 'busybox', 'sh', '-c', 'echo kept > /d/f']).code, 0);
    const id = d.berth(['run', '-d', '-v', 'rst-tmp:/t', 'busybox', 'sh', '-c', 'echo in-tmpfs > /t/x; sleep 30']).stdout.trim();
    const data = join(d.dataRoot, 'volumes', 'rst-tmp', '_data');
    await new Promise((r) => setTimeout(r, 300));
    await d.stop();
    await d.startProcess();
    assert.equal(d.docker(['run', '--rm', '-v', 'rst-data:/d', 'busybox', 'cat', '/d/f']).stdout, 'kept\n');
    assert.equal(readFileSync(join(data, 'x'), 'utf8'), 'in-tmpfs\n', 'the tmpfs stays mounted while its container runs');
    assert.equal(d.berth(['rm', '-f', id]).code, 0);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${data} `), 'and goes once no container runs with it');
    assert.equal(d.berth(['volume', 'rm', 'rst-tmp', 'rst-data']).code, 0);
  });

  test('bind mounts keep their data across containers; system df counts volumes', () => {
    const host = mkdtempSync(join(d.dir, 'keep-'));
    for (const c of CLIS) assert.equal(cli(c, ['run', '--rm', '-v', `${host}:/b`, 'busybox', 'sh', '-c', `echo ${c} >> /b/log`]).code, 0);
    assert.equal(d.berth(['run', '--rm', '-v', `${host}:/b`, 'busybox', 'cat', '/b/log']).stdout, 'berth\ndocker\n');
    d.berth(['volume', 'create', 'dfvol']);
    d.berth(['run', '--rm', '-v', 'dfvol:/d', 'busybox', 'sh', '-c', 'printf 12345 > /d/f']);
    const df = d.docker(['system', 'df', '-v', '--format', '{{json .Volumes}}']);
    assert.equal(df.code, 0, df.stderr);
    const vols = JSON.parse(df.stdout) as { Name: string; Size: string; Links: string }[];
    const v = vols.find((x) => x.Name === 'dfvol');
    assert.ok(v, df.stdout);
    assert.equal(v.Size, '5B');
    assert.equal(v.Links, '0');
    d.berth(['volume', 'rm', 'dfvol']);
  });
});
