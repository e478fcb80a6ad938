import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync, symlinkSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { TestDaemon, run } from '../helpers/daemon.ts';
import { dir, file, symlink, tarBytes } from '../helpers/tars.ts';
import { readTar } from '../../src/common/tar.ts';

const CLIS = ['berth', 'docker'] as const;
type Cli = (typeof CLIS)[number];

async function tarNames(buf: Buffer): Promise<Map<string, { type: string; size: number; linkname: string }>> {
  const out = new Map<string, { type: string; size: number; linkname: string }>();
  for await (const e of readTar((async function* () { yield buf; })())) {
    out.set(e.header.name.replace(/^\.\//, '').replace(/\/$/, ''), { type: e.header.type, size: e.header.size, linkname: e.header.linkname });
    for await (const _ of e.body) { /* skip */ }
  }
  return out;
}

describe('container filesystem: cp, diff, commit, export', () => {
  let d: TestDaemon;
  let work: string;
  before(async () => {
    d = await TestDaemon.startWithBusybox();
    work = mkdtempSync(join(d.dir, 'work-'));
  });
  after(async () => {
    await d.cleanup();
  });
  const cli = (which: Cli, args: string[], opts?: Parameters<TestDaemon['berth']>[1]) => (which === 'berth' ? d.berth(args, opts) : d.docker(args, opts));
  const ok = (r: { code: number; stdout: string; stderr: string }) => {
    assert.equal(r.code, 0, `${r.stderr}\n${d.log.slice(-2000)}`);
    return r.stdout;
  };

  test('cp a file in and out of a running and a stopped container keeps its bytes', () => {
    const payload = randomBytes(300_000);
    const src = join(work, 'payload.bin');
    writeFileSync(src, payload);
    for (const c of CLIS) {
      const name = `cp-${c}`;
      ok(cli(c, ['run', '-d', '--name', name, 'busybox', 'sleep', '300']));
      ok(cli(c, ['cp', src, `${name}:/tmp/payload.bin`]));
      assert.equal(ok(cli(c, ['run', '--rm', 'busybox', 'true'])), '');
      const out = join(work, `out-${c}.bin`);
      ok(cli(c, ['cp', `${name}:/tmp/payload.bin`, out]));
      assert.ok(readFileSync(out).equals(payload), 'same bytes back');
      ok(cli(c, ['stop', '-t', '0', name]));
      // Stopped: the writable layer is mounted for the copy.
      const out2 = join(work, `out2-${c}.bin`);
      ok(cli(c, ['cp', `${name}:/tmp/payload.bin`, out2]));
      assert.ok(readFileSync(out2).equals(payload));
      ok(cli(c, ['cp', src, `${name}:/stopped.bin`]));
      const back = cli(c, ['cp', `${name}:/stopped.bin`, '-'], { binary: true });
      assert.equal(back.code, 0, back.stderr);
      ok(cli(c, ['start', name]));
      const sum = ok(cli(c, ['exec', name, 'md5sum', '/stopped.bin']));
      assert.equal(sum.split(' ')[0], run('md5sum', [src]).stdout.split(' ')[0]);
      ok(cli(c, ['rm', '-f', name]));
    }
  });

  test('cp -a gives the files to the container\'s user; without it they keep their owners', async () => {
    const src = join(work, 'owned.txt');
    writeFileSync(src, 'owned\n');
    for (const c of CLIS) {
      const name = `owner-${c}`;
      ok(cli(c, ['create', '--name', name, '-u', '123:456', 'busybox', 'sh']));
      ok(cli(c, ['cp', '-a', src, `${name}:/a.txt`]));
      ok(cli(c, ['cp', src, `${name}:/plain.txt`]));
      for (const [path, uid, gid] of [['/a.txt', 123, 456], ['/plain.txt', process.getuid!(), process.getgid!()]] as const) {
        const r = cli(c, ['cp', `${name}:${path}`, '-'], { binary: true });
        assert.equal(r.code, 0, r.stderr);
        for await (const e of readTar((async function* () { yield Buffer.from(r.stdout); })())) {
          assert.deepEqual([e.header.uid, e.header.gid], [uid, gid], `${c} ${path}`);
          for await (const _ of e.body) { /* skip */ }
        }
      }
      ok(cli(c, ['rm', name]));
    }
  });

  test('cp on a running container sees its volumes and tmpfs mounts', () => {
    const src = join(work, 'vol.txt');
    writeFileSync(src, 'into the volume\n');
    for (const c of CLIS) {
      const name = `cpvol-${c}`;
      ok(cli(c, ['run', '-d', '--name', name, '-v', `cpvol-${c}:/data`, '--tmpfs', '/scratch', 'busybox', 'sh', '-c', 'echo from-tmpfs > /scratch/t; sleep 300']));
      ok(cli(c, ['cp', src, `${name}:/data/vol.txt`]));
      assert.equal(ok(cli(c, ['exec', name, 'cat', '/data/vol.txt'])), 'into the volume\n');
      const t = join(work, `tmpfs-${c}`);
      ok(cli(c, ['cp', `${name}:/scratch/t`, t]));
      assert.equal(readFileSync(t, 'utf8'), 'from-tmpfs\n');
      assert.equal(ok(cli(c, ['inspect', '--format', '{{.State.Status}}', name])).trim(), 'running', 'paused for the copy only');
      ok(cli(c, ['rm', '-f', name]));
      assert.equal(ok(cli(c, ['run', '--rm', '-v', `cpvol-${c}:/data`, 'busybox', 'cat', '/data/vol.txt'])), 'into the volume\n');
    }
  });

  test('cp on a stopped container reaches its volumes too', () => {
    const src = join(work, 'stopped-vol.txt');
    writeFileSync(src, 'stopped volume\n');
    for (const c of CLIS) {
      const name = `cpvol-stopped-${c}`;
      ok(cli(c, ['run', '--name', name, '-v', `stopped-vol-${c}:/data`, 'busybox', 'sh', '-c', 'echo before > /data/before']));
      ok(cli(c, ['cp', src, `${name}:/data/in.txt`]));
      const out = join(work, `stopped-vol-out-${c}`);
      ok(cli(c, ['cp', `${name}:/data/before`, out]));
      assert.equal(readFileSync(out, 'utf8'), 'before\n');
      assert.equal(ok(cli(c, ['run', '--rm', '-v', `stopped-vol-${c}:/data`, 'busybox', 'cat', '/data/in.txt'])), 'stopped volume\n');
      assert.ok(!ok(cli(c, ['diff', name])).includes('/data/in.txt'), 'the file went to the volume, not the container layer');
      ok(cli(c, ['rm', name]));
    }
  });

  test('cp a directory both ways, and /. copies its contents', () => {
    const tree = join(work, 'tree');
    mkdirSync(join(tree, 'sub'), { recursive: true });
    writeFileSync(join(tree, 'a.txt'), 'alpha\n');
    writeFileSync(join(tree, 'sub', 'b.txt'), 'beta\n');
    symlinkSync('a.txt', join(tree, 'link'));
    for (const c of CLIS) {
      const name = `cpdir-${c}`;
      ok(cli(c, ['create', '--name', name, 'busybox', 'sh']));
      ok(cli(c, ['cp', tree, `${name}:/data`]));
      ok(cli(c, ['cp', `${tree}/.`, `${name}:/tmp`]));
      const back = join(work, `back-${c}`);
      ok(cli(c, ['cp', `${name}:/data`, back]));
      assert.equal(readFileSync(join(back, 'sub', 'b.txt'), 'utf8'), 'beta\n');
      assert.equal(readlinkSync(join(back, 'link')), 'a.txt');
      const into = mkdtempSync(join(work, `into-${c}-`));
      ok(cli(c, ['cp', `${name}:/tmp/.`, into]));
      assert.deepEqual(readdirSync(into).sort(), ['a.txt', 'link', 'sub']);
      ok(cli(c, ['cp', `${name}:/data`, into]));
      assert.equal(readFileSync(join(into, 'data', 'a.txt'), 'utf8'), 'alpha\n');
      ok(cli(c, ['rm', name]));
    }
  });

  test('symlinks in the container resolve inside the container, never on the host', () => {
    for (const c of CLIS) {
      const name = `cplink-${c}`;
      ok(cli(c, ['run', '--name', name, 'busybox', 'sh', '-c',
        'echo in-container > /etc/issue && ln -s /etc/issue /link && ln -s /etc /etclink && ln -s ../../../../../../etc/issue /climb']));
      const viaL = join(work, `issue-L-${c}`);
      ok(cli(c, ['cp', '-L', `${name}:/link`, viaL]));
      assert.equal(readFileSync(viaL, 'utf8'), 'in-container\n');
      const viaDir = join(work, `issue-dir-${c}`);
      ok(cli(c, ['cp', `${name}:/etclink/issue`, viaDir]));
      assert.equal(readFileSync(viaDir, 'utf8'), 'in-container\n');
      const climb = join(work, `issue-climb-${c}`);
      ok(cli(c, ['cp', '-L', `${name}:/climb`, climb]));
      assert.equal(readFileSync(climb, 'utf8'), 'in-container\n');
      // Without -L the link itself is copied.
      const raw = join(work, `raw-${c}`);
      ok(cli(c, ['cp', `${name}:/link`, raw]));
      assert.ok(lstatSync(raw).isSymbolicLink());
      assert.equal(readlinkSync(raw), '/etc/issue');
      // Copying in through a symlinked directory lands inside the container too.
      writeFileSync(join(work, 'note.txt'), 'note\n');
      ok(cli(c, ['cp', join(work, 'note.txt'), `${name}:/etclink/`]));
      const note = join(work, `note-back-${c}`);
      ok(cli(c, ['cp', `${name}:/etc/note.txt`, note]));
      assert.equal(readFileSync(note, 'utf8'), 'note\n');
      assert.ok(!existsSync('/etc/note.txt'), 'nothing was written on the host');
      // The files the runtime mounts over the root come from the container, not the layer below them.
      const hn = join(work, `hostname-${c}`);
      ok(cli(c, ['cp', `${name}:/etc/hostname`, hn]));
      assert.equal(readFileSync(hn, 'utf8').trim(), ok(cli(c, ['inspect', '--format', '{{.Config.Hostname}}', name])).trim());
      ok(cli(c, ['rm', name]));
    }
  });

  test('in a running container too, symlinks resolve inside its root', async () => {
    ok(d.berth(['run', '-d', '--name', 'cplive', 'busybox', 'sh', '-c', 'echo live-issue > /etc/issue && ln -s /etc /etclink && ln -s ../../../../etc/issue /climb && sleep 300']));
    for (const c of CLIS) {
      const out = join(work, `live-climb-${c}`);
      ok(cli(c, ['cp', '-L', 'cplive:/climb', out]));
      assert.equal(readFileSync(out, 'utf8'), 'live-issue\n');
      writeFileSync(join(work, `live-${c}.txt`), c);
      ok(cli(c, ['cp', join(work, `live-${c}.txt`), 'cplive:/etclink/']));
      assert.equal(ok(d.berth(['exec', 'cplive', 'cat', `/etc/live-${c}.txt`])), c);
    }
    // The whole root: the kernel's /proc and /sys are not walked.
    const all = d.docker(['cp', 'cplive:/', '-'], { binary: true });
    assert.equal(all.code, 0, all.stderr);
    const names = [...(await tarNames(Buffer.from(all.stdout))).keys()];
    assert.ok(names.some((n) => /(^|\/)bin\/sh$/.test(n)), names.slice(0, 20).join(' '));
    assert.ok(!names.some((n) => /(^|\/)proc\/\d/.test(n) || /(^|\/)sys\/kernel/.test(n)), 'no kernel files');
    ok(d.berth(['rm', '-f', 'cplive']));
  });

  test('a hostile tar copied in is refused and writes nothing outside the container', async () => {
    ok(d.berth(['create', '--name', 'hostile', 'busybox', 'sh']));
    const marker = `berth-escape-${process.pid}`;
    const tars = [
      await tarBytes([file(`../../../../../../tmp/${marker}`, 'x')]),
      await tarBytes([symlink('esc', '/tmp'), file(`esc/${marker}`, 'x')]),
      await tarBytes([dir('d'), { header: { name: 'd/hl', type: 'hardlink', linkname: `../../../../../etc/passwd` } }]),
      await tarBytes([{ header: { name: 'dev0', type: 'block', devmajor: 8, devminor: 0 } }]),
    ];
    const why = [/escapes the layer root/, /goes through "esc", a symlink/, /hardlink to .* outside the layer root/, /devices are not allowed/];
    for (const [i, t] of tars.entries()) {
      for (const c of CLIS) {
        const r = cli(c, ['cp', '-', 'hostile:/'], { input: t });
        assert.notEqual(r.code, 0, `refused (${c})`);
        assert.match(r.stderr, why[i]);
      }
    }
    // A plain tar on stdin is extracted.
    ok(d.berth(['cp', '-', 'hostile:/'], { input: await tarBytes([dir('fine'), file('fine/ok.txt', 'ok\n')]) }));
    assert.equal(ok(d.docker(['cp', 'hostile:/fine/ok.txt', '-'])).includes('ok\n'), true);
    assert.ok(!existsSync(`/tmp/${marker}`));
    ok(d.berth(['rm', 'hostile']));
  });

  test('diff lists added, changed and deleted paths through both CLIs', () => {
    ok(d.berth(['run', '--name', 'differ', 'busybox', 'sh', '-c', 'mkdir -p /etc/new && echo x > /etc/new/file && echo y >> /etc/profile-x && rm /bin/vi && rm -r /usr/sbin']));
    for (const c of CLIS) {
      const lines = ok(cli(c, ['diff', 'differ'])).trim().split('\n');
      assert.ok(lines.includes('C /etc'), lines.join('\n'));
      assert.ok(lines.includes('A /etc/new'), lines.join('\n'));
      assert.ok(lines.includes('A /etc/new/file'), lines.join('\n'));
      assert.ok(lines.includes('A /etc/profile-x'), lines.join('\n'));
      assert.ok(lines.includes('C /bin'), lines.join('\n'));
      assert.ok(lines.includes('D /bin/vi'), lines.join('\n'));
      assert.ok(lines.includes('D /usr/sbin'), lines.join('\n'));
      assert.ok(!lines.some((l) => /\/(proc|sys|dev|\.dockerenv|etc\/hostname)$/.test(l)), `mount points are left out:\n${lines.join('\n')}`);
    }
  });

  test('commit: the new image has the change, the deletion stays deleted, and --change applies', () => {
    for (const c of CLIS) {
      const name = `committed-${c}`;
      ok(cli(c, ['run', '--name', name, 'busybox', 'sh', '-c', `echo hello-${c} > /msg && rm /bin/vi`]));
      const id = ok(cli(c, ['commit', '-a', 'tester', '-m', 'a message', '--change', 'CMD ["cat","/msg"]', '--change', 'ENV FOO=bar', name, `snap-${c}:v1`])).trim();
      assert.match(id, /^sha256:[a-f0-9]{64}$/);
      assert.equal(ok(cli(c, ['run', '--rm', `snap-${c}:v1`])), `hello-${c}\n`);
      const gone = cli(c, ['run', '--rm', `snap-${c}:v1`, 'ls', '/bin/vi']);
      assert.notEqual(gone.code, 0, 'the deleted file stays deleted');
      assert.equal(ok(cli(c, ['run', '--rm', `snap-${c}:v1`, 'sh', '-c', 'echo $FOO'])), 'bar\n');
      const insp = JSON.parse(ok(cli(c, ['image', 'inspect', `snap-${c}:v1`])))[0];
      assert.equal(insp.Author, 'tester');
      assert.equal(insp.Comment, 'a message');
      assert.deepEqual(insp.Config.Cmd, ['cat', '/msg']);
      assert.equal(insp.RootFS.Layers.length, 2);
    }
  });

  test('commit pauses a running container by default and leaves it running', () => {
    ok(d.berth(['run', '-d', '--name', 'live', 'busybox', 'sh', '-c', 'echo live > /live; sleep 300']));
    for (const c of CLIS) {
      ok(cli(c, ['commit', 'live', `live-${c}`]));
      assert.equal(ok(cli(c, ['inspect', '--format', '{{.State.Status}}', 'live'])).trim(), 'running');
      assert.equal(ok(cli(c, ['run', '--rm', `live-${c}`, 'cat', '/live'])), 'live\n');
    }
    ok(d.berth(['rm', '-f', 'live']));
  });

  test('the same change commits to the same layer digest', () => {
    ok(d.berth(['run', '--name', 'det', 'busybox', 'sh', '-c', 'echo same > /same && touch -d 2020-01-01 /same /']));
    const a = JSON.parse(ok(d.berth(['image', 'inspect', ok(d.berth(['commit', 'det'])).trim()])))[0].RootFS.Layers;
    const b = JSON.parse(ok(d.berth(['image', 'inspect', ok(d.berth(['commit', 'det'])).trim()])))[0].RootFS.Layers;
    assert.equal(a.at(-1), b.at(-1));
    ok(d.berth(['rm', 'det']));
  });

  test('export then import gives an image with the same files', async () => {
    ok(d.berth(['run', '--name', 'exp', 'busybox', 'sh', '-c', 'echo exported > /exported && ln -s /exported /exlink && rm /bin/vi']));
    for (const c of CLIS) {
      const out = join(work, `export-${c}.tar`);
      ok(cli(c, ['export', '-o', out, 'exp']));
      const names = await tarNames(readFileSync(out));
      assert.equal(names.get('exported')?.size, 9);
      assert.equal(names.get('exlink')?.linkname, '/exported');
      assert.ok(names.has('bin/sh'));
      assert.ok(!names.has('bin/vi'), 'a deleted file is not exported');
      const piped = cli(c, ['export', 'exp'], { binary: true });
      assert.equal(piped.code, 0);
      assert.ok(Buffer.from(piped.stdout).equals(readFileSync(out)), 'export is deterministic');
      ok(cli(c, ['import', out, `reimported-${c}`]));
      assert.equal(ok(cli(c, ['run', '--rm', `reimported-${c}`, 'cat', '/exported'])), 'exported\n');
      const ls = (img: string) => ok(cli(c, ['run', '--rm', img, 'sh', '-c', 'find / -xdev | grep -v -e ^/proc -e ^/sys -e ^/dev | sort']));
      assert.equal(ls(`reimported-${c}`), ls(ok(d.berth(['commit', 'exp'])).trim()));
    }
  });
});
