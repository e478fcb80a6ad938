import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestDaemon, busyboxRootfs, importBusybox } from '../helpers/daemon.ts';
import { dockerArchive, file } from '../helpers/tars.ts';

/** Each CLI a user may hold: berth's own and the real docker client. */
const CLIS = ['berth', 'docker'] as const;

describe('images through berth and docker', () => {
  let d: TestDaemon;
  let bbId: string;
  before(async () => {
    d = await TestDaemon.start();
    bbId = importBusybox(d);
  });
  after(async () => {
    await d.cleanup();
  });
  const cli = (which: (typeof CLIS)[number], args: string[], opts?: Parameters<TestDaemon['berth']>[1]) => (which === 'berth' ? d.berth(args, opts) : d.docker(args, opts));

  test('import makes an image whose ID is its config digest', () => {
    assert.match(bbId, /^sha256:[a-f0-9]{64}$/);
    for (const c of CLIS) {
      const r = cli(c, ['image', 'inspect', '--format', '{{.Id}} {{json .Config.Cmd}} {{.Os}}', 'busybox']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), `${bbId} ["sh"] linux`);
    }
  });

  test('image ls shows the table both ways, with -q, --no-trunc and --format', () => {
    for (const c of CLIS) {
      const table = cli(c, ['images']);
      assert.equal(table.code, 0, table.stderr);
      const lines = table.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
      assert.ok(lines.some((l) => /^busybox\s+latest\s+[a-f0-9]{12}\s+.+ago\s+\d/.test(l)), table.stdout);
      assert.equal(cli(c, ['images', '-q', 'busybox']).stdout.trim(), bbId.slice(7, 19));
      assert.equal(cli(c, ['images', '-q', '--no-trunc', 'busybox']).stdout.trim(), bbId);
      assert.equal(cli(c, ['images', '--format', '{{.Repository}}:{{.Tag}}', 'busybox']).stdout.trim(), 'busybox:latest');
      const json = JSON.parse(cli(c, ['images', '--format', '{{json .}}', 'busybox']).stdout);
      assert.equal(json.Repository, 'busybox');
      assert.equal(json.ID, bbId.slice(7, 19));
      const t = cli(c, ['images', '--format', 'table {{.ID}}\t{{.Tag}}', 'busybox']).stdout.split('\n');
      assert.match(t[0], /^IMAGE ID\s+TAG$/);
      assert.match(t[1], /^[a-f0-9]{12}\s+latest$/);
    }
  });

  test('filters: reference globs, dangling, label, before and since', () => {
    const labelled = importBusybox(d, 'app:1', ['LABEL tier=web', 'CMD ["sh"]']);
    d.berth(['tag', 'app:1', 'app:latest']);
    const danglingId = importBusybox(d, 'tmp:x', ['ENV X=1']);
    assert.equal(d.berth(['tag', 'busybox', 'tmp:x']).code, 0); // moves tmp:x away: the other image is left dangling
    try {
      for (const c of CLIS) {
        const refs = (args: string[]) => cli(c, ['images', '--format', '{{.Repository}}:{{.Tag}}', ...args]).stdout.trim().split('\n').filter(Boolean).sort();
        assert.deepEqual(refs(['--filter', 'reference=*:latest']), ['app:latest', 'busybox:latest']);
        assert.deepEqual(refs(['--filter', 'reference=app']), ['app:1', 'app:latest']);
        assert.deepEqual(refs(['--filter', 'label=tier=web']), ['app:1', 'app:latest']);
        assert.deepEqual(refs(['--filter', 'label=tier=db']), []);
        const dangling = cli(c, ['images', '-q', '--no-trunc', '--filter', 'dangling=true']).stdout.trim();
        assert.equal(dangling, danglingId);
        assert.ok(!refs(['--filter', 'dangling=false']).includes('<none>:<none>'));
        assert.deepEqual(refs(['--filter', 'since=busybox']).filter((r) => r.startsWith('app')), ['app:1', 'app:latest']);
        assert.ok(!refs(['--filter', 'before=app:1']).includes('app:1'));
        assert.ok(refs(['--filter', 'before=app:1']).includes('busybox:latest'));
      }
    } finally {
      d.berth(['rmi', '-f', labelled, danglingId]);
      d.berth(['tag', 'busybox', 'busybox:latest']);
      d.berth(['rmi', 'tmp:x']);
    }
  });

  test('tag, then rmi by name untags and by ID refuses two repositories without -f', () => {
    for (const c of CLIS) {
      assert.equal(cli(c, ['tag', 'busybox', 'localhost:5000/team/bb:v1']).code, 0);
      assert.equal(cli(c, ['images', '-q', '--no-trunc', 'localhost:5000/team/bb:v1']).stdout.trim(), bbId);
      const byId = cli(c, ['rmi', bbId.slice(7, 19)]);
      assert.notEqual(byId.code, 0);
      assert.match(byId.stderr, /conflict: unable to delete [a-f0-9]{12} \(must be forced\) - image is referenced in multiple repositories/);
      const untag = cli(c, ['rmi', 'localhost:5000/team/bb:v1']);
      assert.equal(untag.code, 0, untag.stderr);
      assert.equal(untag.stdout.trim(), 'Untagged: localhost:5000/team/bb:v1');
      assert.equal(cli(c, ['images', '-q', '--no-trunc', 'busybox']).stdout.trim(), bbId, 'busybox survives');
    }
  });

  test('rmi -f by ID removes every tag and the image', () => {
    for (const c of CLIS) {
      const id = importBusybox(d, 'gone:1', ['ENV WHO=' + c]);
      cli(c, ['tag', 'gone:1', 'other/gone:2']);
      const r = cli(c, ['rmi', '-f', id]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Untagged: gone:1/);
      assert.match(r.stdout, /Untagged: other\/gone:2/);
      assert.match(r.stdout, new RegExp(`Deleted: ${id}`));
      assert.notEqual(cli(c, ['image', 'inspect', id]).code, 0);
    }
  });

  test('history shows the import', () => {
    for (const c of CLIS) {
      const r = cli(c, ['history', 'busybox']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
      assert.match(lines[1], new RegExp(`^${bbId.slice(7, 19)}\\s+.*ago\\s+\\S+MB\\s+Imported from -$`));
    }
  });

  test('import applies --change, --message and --platform', () => {
    for (const c of CLIS) {
      const r = cli(c, ['import', '--change', 'ENV A=1', '--change', 'WORKDIR /srv', '--change', 'ENTRYPOINT ["/bin/sh","-c"]',
        '--change', 'EXPOSE 8080', '--change', 'USER daemon', '--message', 'hello', '--platform', 'linux/arm64', busyboxRootfs('amd64'), `imp-${c}:v1`]);
      assert.equal(r.code, 0, r.stderr);
      const id = r.stdout.trim();
      const f = cli(c, ['image', 'inspect', '--format', '{{json .Config.Env}} {{.Config.WorkingDir}} {{json .Config.Entrypoint}} {{json .Config.ExposedPorts}} {{.Config.User}} {{.Architecture}} {{.Comment}}', id]);
      assert.equal(f.stdout.trim(), '["A=1"] /srv ["/bin/sh","-c"] {"8080/tcp":{}} daemon arm64 hello');
      cli(c, ['rmi', `imp-${c}:v1`]);
    }
    const stdin = d.berth(['import', '-', 'fromstdin:1'], { input: readFileSync(busyboxRootfs()) });
    assert.equal(stdin.code, 0, stdin.stderr);
    d.berth(['rmi', 'fromstdin:1']);
  });

  test('save | load round-trips IDs and layer digests, and saving again gives the same bytes', async () => {
    const two = await dockerArchive([{ layers: [[file('a.txt', 'A')], [file('b.txt', 'B')]], tags: ['two:layers'] }]);
    const p = join(d.dir, 'two.tar');
    writeFileSync(p, two.tar);
    assert.equal(d.docker(['load', '-i', p]).stdout.trim(), 'Loaded image: two:layers');
    for (const [saver, loader] of [['docker', 'berth'], ['berth', 'docker']] as const) {
      const s1 = cli(saver, ['save', 'busybox', 'two:layers'], { binary: true });
      assert.equal(s1.code, 0, s1.stderr);
      const layersBefore = cli('berth', ['image', 'inspect', '--format', '{{.Id}} {{json .RootFS.Layers}}', 'busybox', 'two:layers']).stdout;
      assert.equal(cli('berth', ['rmi', 'busybox', 'two:layers']).code, 0);
      assert.notEqual(cli('berth', ['image', 'inspect', 'busybox']).code, 0);
      const l = cli(loader, ['load'], { input: s1.stdout as unknown as Buffer });
      assert.equal(l.code, 0, l.stderr);
      assert.deepEqual(l.stdout.trim().split('\n').sort(), ['Loaded image: busybox:latest', 'Loaded image: two:layers']);
      assert.equal(cli('berth', ['image', 'inspect', '--format', '{{.Id}} {{json .RootFS.Layers}}', 'busybox', 'two:layers']).stdout, layersBefore);
      const s2 = cli(saver, ['save', 'busybox', 'two:layers'], { binary: true });
      assert.ok(Buffer.compare(s1.stdout as unknown as Buffer, s2.stdout as unknown as Buffer) === 0, 'save → load → save is byte-identical');
    }
    const ids = d.berth(['image', 'inspect', '--format', '{{.Id}} {{json .RootFS.Layers}}', 'two:layers']).stdout.trim();
    assert.equal(ids, `${two.ids[0]} ${JSON.stringify(two.diffIds[0])}`);
    // `save -o` writes a file that docker load reads.
    const out = join(d.dir, 'saved.tar');
    assert.equal(d.berth(['save', '-o', out, 'two:layers']).code, 0);
    d.berth(['rmi', 'two:layers']);
    assert.equal(d.docker(['load', '-i', out]).stdout.trim(), 'Loaded image: two:layers');
    d.berth(['rmi', 'two:layers']);
  });

  test('load of a gzip-layered OCI layout keeps its manifest digest', async () => {
    const arch = await dockerArchive([{ layers: [[file('z.txt', 'zipped')]], tags: ['gz:1'], gzip: true }]);
    const r = d.berth(['load'], { input: arch.tar });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', 'gz:1']).stdout.trim(), arch.ids[0]);
    // Saved back, the layer is the uncompressed tar: its digest is the diff ID.
    const saved = d.berth(['save', 'gz:1'], { binary: true });
    d.berth(['rmi', 'gz:1']);
    assert.equal(d.docker(['load'], { input: saved.stdout as unknown as Buffer }).code, 0);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', 'gz:1']).stdout.trim(), arch.ids[0]);
    d.berth(['rmi', 'gz:1']);
  });

  test('image prune removes dangling images, -a removes unused ones', () => {
    const dangling = importBusybox(d, 'dang:1', ['ENV D=1']);
    d.berth(['rmi', 'dang:1']); // the last tag: the image goes with it
    assert.notEqual(d.berth(['image', 'inspect', dangling]).code, 0);
    const orphan = d.berth(['import', '--change', 'ENV O=1', busyboxRootfs()]).stdout.trim();
    for (const c of CLIS) {
      const keep = cli(c, ['images', '-q', '--no-trunc', '--filter', 'dangling=true']).stdout.trim();
      if (c === 'berth') assert.equal(keep, orphan);
      const r = cli(c, ['image', 'prune', '-f']);
      assert.equal(r.code, 0, r.stderr);
      if (c === 'berth') assert.match(r.stdout, new RegExp(`deleted: ${orphan}`));
      assert.match(r.stdout, /Total reclaimed space: /);
      assert.equal(cli(c, ['images', '-q', '--filter', 'dangling=true']).stdout.trim(), '');
    }
    const extra = importBusybox(d, 'extra:1', ['ENV E=1']);
    const r = d.docker(['image', 'prune', '-a', '-f', '--filter', 'label=none']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(d.berth(['images', '-q', '--no-trunc', 'extra:1']).stdout.trim(), extra, 'label filter keeps what does not match');
    d.berth(['rmi', 'extra:1']);
  });

  test('system df counts images and sizes', () => {
    for (const c of CLIS) {
      const r = cli(c, ['system', 'df']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);
      const images = d.berth(['images', '-q', '--no-trunc']).stdout.trim().split('\n').filter(Boolean);
      const n = new Set(images).size;
      assert.match(lines[1], new RegExp(`^Images\\s+${n}\\s+0\\s+\\d`));
    }
  });

  test('bad input: one line, non-zero exit, no stack trace', () => {
    const cases: [string[], RegExp][] = [
      [['image', 'inspect', 'nope'], /No such image: nope/],
      [['rmi', 'nope:1'], /No such image: nope:1/],
      [['history', 'nope'], /No such image: nope:latest/],
      [['tag', 'busybox', 'Bad Name'], /invalid reference format/],
      [['images', '--filter', 'colour=red'], /invalid filter 'colour'/],
      [['images', '--format', '{{.Nope'], /template/],
      [['images', '--bogus'], /unknown flag: --bogus/],
      [['tag', 'nope', 'x:1'], /No such image: nope:latest/],
    ];
    for (const c of CLIS) {
      for (const [args, re] of cases) {
        const r = cli(c, args);
        assert.notEqual(r.code, 0, `${c} ${args.join(' ')} should fail`);
        assert.match(r.stderr, re, `${c} ${args.join(' ')}: ${r.stderr}`);
        assert.doesNotMatch(r.stderr, /\n\s+at /, `${c} ${args.join(' ')} printed a stack trace`);
      }
    }
    assert.equal(d.berth(['images', '--bogus']).code, 125);
  });
});
