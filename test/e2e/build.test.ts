// Dockerfile builds through `berth build` and the real `docker build` (legacy builder) against berthd,
// asserting on the images built: files, env, cmd, user, labels; and on the cache.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { BERTH, ROOT, TestDaemon, busyboxRootfs, importBusybox } from '../helpers/daemon.ts';
import { device, file, symlink as symlinkEntry, tarBytes } from '../helpers/tars.ts';
import { request } from 'node:http';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'build');
const LEGACY = { DOCKER_BUILDKIT: '0' };

describe('docker build and berth build', () => {
  let d: TestDaemon;
  let work: string;
  before(async () => {
    d = await TestDaemon.start();
    importBusybox(d);
    work = mkdtempSync(join(tmpdir(), 'berth-build-'));
  });
  after(async () => {
    await d.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  /** A fresh copy of a fixture to build (and change). */
  const fixture = (name: string): string => {
    const dir = join(work, `${name}-${Math.random().toString(36).slice(2, 8)}`);
    cpSync(join(FIXTURES, name), dir, { recursive: true });
    return dir;
  };
  const berthBuild = (args: string[], opts: Parameters<TestDaemon['berth']>[1] = {}) => d.berth(['build', '--progress=plain', ...args], opts);
  const dockerBuild = (args: string[], opts: Parameters<TestDaemon['docker']>[1] = {}) => d.docker(['build', ...args], { ...opts, env: { ...LEGACY, ...opts.env } });
  const inspect = (ref: string, format: string) => d.berth(['image', 'inspect', '--format', format, ref]).stdout.trim();
  const runOut = (ref: string, ...cmd: string[]) => {
    const r = d.berth(['run', '--rm', ref, ...cmd]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  test('the hello-world shape builds through both CLIs to the same image, with its files, env, cmd, user and labels', () => {
    const dir = fixture('hello');
    const b = berthBuild(['-t', 'hello:berth', dir]);
    assert.equal(b.code, 0, b.stderr + b.stdout);
    const k = dockerBuild(['-t', 'hello:docker', dir]);
    assert.equal(k.code, 0, k.stderr + k.stdout);
    assert.match(k.stdout, /Successfully built [0-9a-f]{12}/);
    assert.match(k.stdout, /Successfully tagged hello:docker/);
    // Same Dockerfile, same context, same cache: the same image.
    assert.equal(inspect('hello:berth', '{{.Id}}'), inspect('hello:docker', '{{.Id}}'));
    for (const ref of ['hello:berth', 'hello:docker']) {
      assert.equal(inspect(ref, '{{json .Config.Cmd}}'), '["sh","/app/app.sh"]');
      assert.equal(inspect(ref, '{{.Config.User}}'), 'nobody');
      assert.equal(inspect(ref, '{{.Config.WorkingDir}}'), '/app');
      assert.equal(inspect(ref, '{{index .Config.Labels "org.opencontainers.image.title"}}'), 'hello');
      assert.match(inspect(ref, '{{json .Config.Env}}'), /"APP_ENV=production","PORT=8000"/);
      assert.equal(inspect(ref, '{{json .Config.ExposedPorts}}'), '{"8000/tcp":{}}');
    }
    assert.equal(runOut('hello:berth'), 'Hello World from nobody in production on 8000\n');
    assert.equal(runOut('hello:docker', 'cat', '/app/installed.txt'), 'installed: flask==3.0\n');
    // WORKDIR made /app; COPY . . brought the whole context.
    assert.equal(runOut('hello:berth', 'ls', '/app').split('\n').filter(Boolean).sort().join(' '), 'Dockerfile app.sh installed.txt requirements.txt');
  });

  test('a rebuild with no change is entirely cached and gives the same image ID; a changed file re-runs only what follows its COPY', () => {
    const dir = fixture('hello');
    const first = berthBuild(['-t', 'cache:1', dir]);
    assert.equal(first.code, 0, first.stderr);
    const id = inspect('cache:1', '{{.Id}}');
    for (const again of [berthBuild(['-t', 'cache:2', dir]), dockerBuild(['-t', 'cache:3', dir])]) {
      assert.equal(again.code, 0, again.stderr);
      // Every step after FROM comes from the cache, and nothing runs.
      assert.equal((again.stdout.match(/Using cache/g) ?? []).length, 9, again.stdout);
      assert.doesNotMatch(again.stdout, /Running in/);
    }
    assert.equal(inspect('cache:2', '{{.Id}}'), id);
    assert.equal(inspect('cache:3', '{{.Id}}'), id);

    // The code changes; the requirements do not: the RUN after `COPY requirements.txt` stays cached.
    writeFileSync(join(dir, 'app.sh'), 'echo changed\n');
    const changed = berthBuild(['-t', 'cache:4', dir]);
    assert.equal(changed.code, 0, changed.stderr);
    const steps = changed.stdout.split(/^Step /m).slice(1);
    const cached = steps.filter((s) => s.includes('Using cache')).map((s) => s.split('\n')[0]);
    assert.deepEqual(cached.map((s) => s.replace(/^\d+\/\d+ : /, '')), ['WORKDIR /app', 'COPY requirements.txt .', 'RUN echo "installed: $(cat requirements.txt)" > /app/installed.txt']);
    assert.notEqual(inspect('cache:4', '{{.Id}}'), id);
    assert.equal(runOut('cache:4'), 'changed\n');

    // The dependency file changes: its RUN runs again.
    writeFileSync(join(dir, 'requirements.txt'), 'flask==3.1\n');
    const deps = berthBuild(['-t', 'cache:5', dir]);
    assert.match(deps.stdout, /Running in/);
    assert.equal(runOut('cache:5', 'cat', '/app/installed.txt'), 'installed: flask==3.1\n');
    // Timestamps play no part: touching a file changes nothing.
    const touched = berthBuild(['-t', 'cache:6', dir]);
    spawnSync('touch', [join(dir, 'app.sh')]);
    const again = berthBuild(['-t', 'cache:7', dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(inspect('cache:7', '{{.Id}}'), inspect('cache:6', '{{.Id}}'));
    assert.equal(touched.code, 0);
  });

  test('the cache survives a daemon restart', async () => {
    const dir = fixture('hello');
    assert.equal(berthBuild(['-t', 'restart:1', dir]).code, 0);
    await d.stop();
    await d.startProcess();
    const again = berthBuild(['-t', 'restart:2', dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /Running in/);
    assert.equal(inspect('restart:2', '{{.Id}}'), inspect('restart:1', '{{.Id}}'));
    // --no-cache runs everything again.
    const fresh = berthBuild(['--no-cache', '-t', 'restart:3', dir]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.doesNotMatch(fresh.stdout, /Using cache/);
  });

  test('multi-stage: COPY --from a stage by name and by index, unneeded stages skipped, deletions are real', () => {
    const dir = fixture('multistage');
    for (const [i, r] of [berthBuild(['--build-arg', 'VERSION=2.5', '-t', 'multi:berth', dir]), dockerBuild(['--build-arg', 'VERSION=2.5', '-t', 'multi:docker', dir])].entries()) {
      assert.equal(r.code, 0, `${i}: ${r.stderr}${r.stdout}`);
      assert.doesNotMatch(r.stdout, /exit 7/);
    }
    for (const ref of ['multi:berth', 'multi:docker']) {
      assert.equal(runOut(ref), 'alpha\nbeta\nversion 2.5\n');
      assert.equal(runOut(ref, '/from-index.txt'), 'alpha\n');
      assert.equal(inspect(ref, '{{json .Config.Entrypoint}}'), '["cat"]');
    }
    // A file removed by a later RUN is absent, not just hidden: whiteouts made it into the layer.
    const r = d.berth(['run', '--rm', '--entrypoint', 'sh', 'multi:berth', '-c', 'ls /bin/vi /var/www 2>&1; echo rc=$?']);
    assert.match(r.stdout, /No such file or directory[\s\S]*rc=1/);
    // --target builds only what that stage needs: the failing stage runs only when it is the target.
    const unused = berthBuild(['--target', 'unused', '-t', 'multi:unused', dir]);
    assert.notEqual(unused.code, 0);
    assert.match(unused.stderr, /The command '\/bin\/sh -c exit 7' returned a non-zero code: 7/);
    const builder = berthBuild(['--target', 'builder', '-t', 'multi:builder', dir]);
    assert.equal(builder.code, 0, builder.stderr);
    assert.equal(runOut('multi:builder', 'cat', '/out/combined.txt'), 'alpha\nbeta\nversion 1.0\n');
  });

  test('heredocs in RUN and COPY, HEALTHCHECK, STOPSIGNAL and VOLUME', () => {
    const dir = fixture('heredoc');
    for (const [ref, r] of [['here:berth', berthBuild(['-t', 'here:berth', dir])], ['here:docker', dockerBuild(['-t', 'here:docker', dir])]] as const) {
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(runOut(ref, 'cat', '/data/greeting', '/etc/motd', '/etc/literal', '/data/tabs', '/etc/script'), 'hello world\nWelcome, world.\nunexpanded ${WHO}\ntab-stripped\nfrom a shebang script as 0\n');
      assert.equal(inspect(ref, '{{json .Config.Healthcheck}}'), '{"Test":["CMD-SHELL","test -f /data/greeting"],"Interval":5000000000,"Retries":2}');
      assert.equal(inspect(ref, '{{.Config.StopSignal}}'), 'SIGINT');
      assert.equal(inspect(ref, '{{json .Config.Volumes}}'), '{"/data":{}}');
    }
  });

  test('.dockerignore: patterns, ** and ! exceptions apply to COPY through both CLIs', () => {
    const dir = fixture('ignore');
    // Made here: the repository's own .gitignore keeps node_modules/ and *.log out of git.
    mkdirSync(join(dir, 'node_modules', 'pkg'), { recursive: true });
    writeFileSync(join(dir, 'node_modules', 'pkg', 'index.js'), 'mod\n');
    mkdirSync(join(dir, 'logs'));
    writeFileSync(join(dir, 'logs', 'a.log'), 'log\n');
    writeFileSync(join(dir, 'logs', 'important.log'), 'important\n');
    for (const [ref, r] of [['ign:berth', berthBuild(['-t', 'ign:berth', dir])], ['ign:docker', dockerBuild(['-t', 'ign:docker', dir])]] as const) {
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(runOut(ref, 'cat', '/listing.txt'), ['/ctx/.dockerignore', '/ctx/Dockerfile', '/ctx/docs/README.md', '/ctx/keep.txt', '/ctx/logs/important.log', ''].join('\n'));
    }
  });

  test('ONBUILD triggers run in the child build and are not inherited further', () => {
    const base = fixture('onbuild-base');
    assert.equal(berthBuild(['-t', 'onbuild-base:test', base]).code, 0);
    assert.equal(inspect('onbuild-base:test', '{{json .Config.OnBuild}}'), '["COPY . /onbuild","RUN ls /onbuild > /onbuild-listing.txt"]');
    const child = fixture('onbuild-child');
    for (const [ref, r] of [['child:berth', berthBuild(['-t', 'child:berth', child])], ['child:docker', dockerBuild(['-t', 'child:docker', child])]] as const) {
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(runOut(ref, 'cat', '/onbuild-listing.txt'), 'Dockerfile\nchild.txt\n');
      assert.equal(inspect(ref, '{{json .Config.OnBuild}}'), 'null');
      assert.equal(inspect(ref, '{{.Config.Labels.child}}'), 'yes');
    }
  });

  test('a syntax error or unknown instruction names the file and line', () => {
    const dir = join(work, 'bad');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN true\nFROOM x\n');
    for (const r of [berthBuild([dir]), dockerBuild([dir])]) {
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Dockerfile:3: dockerfile parse error on line 3: unknown instruction: FROOM/i);
    }
    writeFileSync(join(dir, 'Dockerfile'), 'ENV X=1\nFROM busybox\n');
    const r = berthBuild([dir]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /line 1/);
  });

  test('COPY of a missing file or one outside the context fails clearly; symlinks never leak host files', () => {
    const dir = join(work, 'copy-errors');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY nothere.txt /x\n');
    for (const r of [berthBuild([dir]), dockerBuild([dir])]) {
      assert.notEqual(r.code, 0);
      assert.match(r.stderr + r.stdout, /COPY failed: file not found in build context or excluded by \.dockerignore: stat nothere\.txt: file does not exist/);
    }
    // `../` cannot climb out: it stays at the context root, where the file does not exist.
    writeFileSync(join(work, 'outside.txt'), 'host file');
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY ../outside.txt /x\n');
    assert.match(berthBuild([dir]).stderr, /file not found in build context/);
    // A symlink to a host path resolves inside the context: /etc/passwd of the context, which is absent.
    symlinkSync('/etc/passwd', join(dir, 'passwd-link'));
    symlinkSync('../outside.txt', join(dir, 'up-link'));
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY passwd-link /p\n');
    assert.match(berthBuild([dir]).stderr, /file not found in build context/);
    // Inside a copied directory a symlink stays a symlink: nothing of the host comes along.
    mkdirSync(join(dir, 'sub'));
    symlinkSync('/etc/shadow', join(dir, 'sub', 'shadow'));
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nCOPY sub /sub\n');
    const ok = berthBuild(['-t', 'links:1', dir]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(runOut('links:1', 'readlink', '/sub/shadow'), '/etc/shadow\n');
    assert.equal(d.berth(['run', '--rm', 'links:1', 'cat', '/sub/shadow']).code, 1);
  });

  test('a failing RUN shows its exit code and last lines, leaves no image, and keeps the steps before it cached', () => {
    const dir = join(work, 'fail');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo first > /first\nRUN echo "about to fail"; exit 3\n');
    const before = d.berth(['images', '-a', '-q']).stdout;
    for (const r of [berthBuild(['-t', 'fail:1', dir]), dockerBuild(['-t', 'fail:1', dir])]) {
      // The step's exit code is the CLI's, as with Docker's legacy builder.
      assert.equal(r.code, 3, r.stdout);
      assert.match(r.stdout, /about to fail/);
      assert.match(r.stderr, /The command '\/bin\/sh -c echo "about to fail"; exit 3' returned a non-zero code: 3/);
    }
    assert.equal(d.berth(['images', '-a', '-q']).stdout, before);
    assert.equal(d.berth(['image', 'inspect', 'fail:1']).code, 1);
    const again = berthBuild([dir]);
    assert.match(again.stdout, /Step 2\/3 : RUN echo first > \/first\n ---> Using cache/);
  });

  test('a cancelled build stops its container and leaves a clean store', async () => {
    const dir = join(work, 'cancel');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo started; sleep 300\n');
    // Once as the step starts (runc may not have made its container yet), once while it runs.
    for (const moment of [/^Step 2\/2/m, /^started$/m]) {
      const child = spawn(BERTH, ['build', '--progress=plain', dir], { env: { ...process.env, ...d.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (c) => (out += c));
      const deadline = Date.now() + 20_000;
      while (!moment.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.match(out, moment);
      child.kill('SIGINT');
      await new Promise((r) => child.on('close', r));
      // The step's container goes, with its mount and its snapshot.
      const until = Date.now() + 10_000;
      const leftovers = () => ({
        runc: existsSync(join(d.dataRoot, 'runc')) ? readdirSync(join(d.dataRoot, 'runc')).filter((n) => n.startsWith('build-')) : [],
        mounts: readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(d.dataRoot) && l.includes('/tmp/build-')),
        sleeping: spawnSync('pgrep', ['-f', 'sleep 300']).stdout.toString().trim(),
      });
      while (Date.now() < until) {
        const l = leftovers();
        if (!l.runc.length && !l.mounts.length && !l.sleeping) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.deepEqual(leftovers(), { runc: [], mounts: [], sleeping: '' });
    }
    // The store is consistent: a build right after works.
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo after > /after\n');
    assert.equal(berthBuild(['-t', 'after-cancel', dir]).code, 0);
    assert.equal(runOut('after-cancel', 'cat', '/after'), 'after\n');
  });

  test('ADD unpacks a local tar and fetches a URL (on loopback); COPY --chown and --chmod', async () => {
    const dir = join(work, 'add');
    mkdirSync(join(dir, 'payload'), { recursive: true });
    writeFileSync(join(dir, 'payload', 'inside.txt'), 'from the tarball\n');
    assert.equal(spawnSync('tar', ['-C', join(dir, 'payload'), '-czf', join(dir, 'payload.tar.gz'), 'inside.txt']).status, 0);
    rmSync(join(dir, 'payload'), { recursive: true });
    writeFileSync(join(dir, 'plain.txt'), 'plain\n');
    // The server runs in its own process: the test's own event loop is blocked while the CLI runs.
    const server = spawn(process.execPath, ['-e', `
      require('node:http').createServer((req, res) => {
        res.writeHead(200, { 'Last-Modified': 'Wed, 21 Oct 2015 07:28:00 GMT' });
        res.end('downloaded\\n');
      }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });
    `], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((resolve) => server.stdout!.once('data', (c) => resolve(Number(String(c).trim()))));
    try {
      writeFileSync(join(dir, 'Dockerfile'), [
        'FROM busybox',
        'ADD payload.tar.gz /unpacked/',
        `ADD http://127.0.0.1:${port}/remote.txt /web/`,
        'COPY --chown=nobody:nogroup --chmod=640 plain.txt /owned.txt',
        '',
      ].join('\n'));
      const r = berthBuild(['-t', 'add:1', dir]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
    } finally {
      server.kill();
    }
    assert.equal(runOut('add:1', 'cat', '/unpacked/inside.txt', '/web/remote.txt'), 'from the tarball\ndownloaded\n');
    assert.equal(runOut('add:1', 'stat', '-c', '%U:%G %a', '/owned.txt', '/web/remote.txt'), 'nobody:nogroup 640\nroot:root 600\n');
  });

  test('RUN --mount=type=secret sees the secret, which never lands in a layer', () => {
    const dir = join(work, 'secret');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(work, 'token.txt'), 's3cr3t-value');
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN --mount=type=secret,id=token cat /run/secrets/token > /seen-length && wc -c < /run/secrets/token > /seen-length\n');
    const r = berthBuild(['--secret', `id=token,src=${join(work, 'token.txt')}`, '-t', 'secret:1', dir]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(runOut('secret:1', 'cat', '/seen-length').trim(), '12');
    assert.equal(d.berth(['run', '--rm', 'secret:1', 'ls', '/run/secrets']).code, 1);
    const saved = d.berth(['save', 'secret:1'], { binary: true });
    assert.ok(!Buffer.from(saved.stdout as unknown as Buffer).includes('s3cr3t-value'));
  });

  test('docker build -q, --iidfile, --label and --build-arg; berth build --output', () => {
    const dir = fixture('multistage');
    const iid = join(work, 'iid');
    const q = dockerBuild(['-q', '--iidfile', iid, '--label', 'built=by-test', dir]);
    assert.equal(q.code, 0, q.stderr);
    const id = readFileSync(iid, 'utf8').trim();
    assert.match(id, /^sha256:[0-9a-f]{64}$/);
    assert.equal(q.stdout.trim(), id);
    assert.equal(inspect(id, '{{.Config.Labels.built}}'), 'by-test');
    const local = join(work, 'out-local');
    const o = d.berth(['build', '-q', '-o', `type=local,dest=${local}`, dir]);
    assert.equal(o.code, 0, o.stderr);
    assert.equal(readFileSync(join(local, 'combined.txt'), 'utf8'), 'alpha\nbeta\nversion 1.0\n');
    const tar = join(work, 'out.tar');
    assert.equal(d.berth(['build', '-q', '-o', `type=docker,dest=${tar}`, '-t', 'exported:1', dir]).code, 0);
    assert.ok(existsSync(tar));
    assert.match(spawnSync('tar', ['-tf', tar]).stdout.toString(), /manifest\.json/);
  });

  test('builder prune drops the cache; the next build runs its steps again', () => {
    const dir = fixture('hello');
    assert.equal(berthBuild(['-t', 'prune:1', dir]).code, 0);
    const du = d.berth(['builder', 'du']);
    assert.equal(du.code, 0, du.stderr);
    assert.match(du.stdout, /RUN echo/);
    const p = d.berth(['builder', 'prune', '-a', '-f']);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /Total:/);
    const again = berthBuild(['-t', 'prune:2', dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Running in/);
    // The image built before the prune still runs: pruning the cache never takes an image's layers.
    assert.equal(runOut('prune:1', 'cat', '/app/installed.txt'), 'installed: flask==3.0\n');
  });

  test('--platform linux/amd64,linux/arm64 builds each platform (RUN under qemu for arm64) into one index that run --platform picks from', () => {
    assert.equal(d.berth(['tag', 'busybox:latest', 'busybox:amd64']).code, 0);
    const imp = d.berth(['import', '--platform', 'linux/arm64', '--change', 'CMD ["sh"]', busyboxRootfs('arm64'), 'busybox:arm64']);
    assert.equal(imp.code, 0, imp.stderr);
    const dir = join(work, 'multiarch');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), 'ARG TARGETARCH\nFROM busybox:${TARGETARCH}\nARG TARGETPLATFORM\nRUN echo "$(uname -m) for $TARGETPLATFORM" > /arch\nCMD ["cat", "/arch"]\n');
    const danglingBefore = d.berth(['images', '--filter', 'dangling=true', '-q']).stdout;
    const r = berthBuild(['--platform', 'linux/amd64,linux/arm64', '-t', 'multiarch:1', dir]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Created image index sha256:[0-9a-f]{64} for linux\/amd64, linux\/arm64/);
    assert.equal(runOut('multiarch:1'), 'x86_64 for linux/amd64\n');
    for (const cli of ['berth', 'docker'] as const) {
      const run = (platform: string) => (cli === 'berth' ? d.berth : d.docker).call(d, ['run', '--rm', '--platform', platform, 'multiarch:1']);
      assert.equal(run('linux/arm64').stdout, 'aarch64 for linux/arm64\n');
      assert.equal(run('linux/amd64').stdout, 'x86_64 for linux/amd64\n');
    }
    // The members are named by digest, so neither shows as a dangling image.
    assert.equal(d.berth(['images', '--filter', 'dangling=true', '-q']).stdout, danglingBefore);
    assert.equal(d.berth(['image', 'prune', '-f']).code, 0);
    assert.equal(d.berth(['run', '--rm', '--platform', 'linux/arm64', 'multiarch:1']).stdout, 'aarch64 for linux/arm64\n');
  });

  test('--squash flattens the image into one layer with the same files', () => {
    const dir = fixture('multistage');
    const r = berthBuild(['--squash', '-t', 'squashed:1', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(inspect('squashed:1', '{{len .RootFS.Layers}}'), '1');
    assert.equal(runOut('squashed:1'), 'alpha\nbeta\nversion 1.0\n');
    // Deleted files stay deleted in the flattened layer.
    assert.equal(d.berth(['run', '--rm', '--entrypoint', 'ls', 'squashed:1', '/bin/vi']).code, 1);
  });

  test('a two-platform build pushed with --push to berth registry serve is an index of both platforms, and pulls back per platform', async () => {
    const root = join(work, 'registry-root');
    const server = spawn(BERTH, ['registry', 'serve', '--listen', '127.0.0.1:0', '--root', root], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let out = '';
        server.stdout!.on('data', (c) => {
          out += c;
          const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
        server.once('exit', (code) => reject(new Error(`registry exited with ${code}`)));
      });
      const name = `127.0.0.1:${port}/multiarch:1`;
      const dir = join(work, 'multiarch');
      const r = berthBuild(['--platform', 'linux/amd64,linux/arm64', '-t', name, '--push', dir]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const m = d.docker(['manifest', 'inspect', '--insecure', name]);
      assert.equal(m.code, 0, m.stderr);
      const index = JSON.parse(m.stdout) as { mediaType: string; manifests: { platform: { architecture: string; os: string } }[] };
      assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
      assert.deepEqual(index.manifests.map((x) => `${x.platform.os}/${x.platform.architecture}`), ['linux/amd64', 'linux/arm64']);
      // Gone locally, then back from the registry for one platform.
      assert.equal(d.berth(['rmi', name]).code, 0);
      const pulled = d.docker(['pull', '--platform', 'linux/arm64', name]);
      assert.equal(pulled.code, 0, pulled.stderr);
      assert.equal(d.docker(['run', '--rm', '--platform', 'linux/arm64', name]).stdout, 'aarch64 for linux/arm64\n');
    } finally {
      server.kill();
    }
  });

  test('-f names a Dockerfile outside the context, through both CLIs', () => {
    const ctx = join(work, 'f-ctx');
    mkdirSync(ctx, { recursive: true });
    writeFileSync(join(ctx, 'data.txt'), 'from the context\n');
    const df = join(work, 'elsewhere.Dockerfile');
    writeFileSync(df, 'FROM busybox\nCOPY data.txt /data.txt\nCMD ["cat", "/data.txt"]\n');
    for (const [ref, r] of [['fout:berth', berthBuild(['-f', df, '-t', 'fout:berth', ctx])], ['fout:docker', dockerBuild(['-f', df, '-t', 'fout:docker', ctx])]] as const) {
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(runOut(ref), 'from the context\n');
    }
    // A Dockerfile from stdin.
    const stdin = d.berth(['build', '-q', '-f', '-', '-t', 'fout:stdin', ctx], { input: 'FROM busybox\nCOPY data.txt /d\n' });
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.equal(runOut('fout:stdin', 'cat', '/d'), 'from the context\n');
  });

  test('a hostile context tar (../, a write through a symlink, a device) is refused and writes nothing outside', async () => {
    const post = (body: Buffer) => new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request({ socketPath: d.socket, method: 'POST', path: '/build?t=hostile', headers: { 'Content-Type': 'application/x-tar', Host: 'berth' } }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      });
      req.on('error', reject);
      req.end(body);
    });
    const dockerfile = file('Dockerfile', 'FROM busybox\nCOPY . /ctx\n');
    const victim = join(work, 'victim');
    mkdirSync(victim, { recursive: true });
    const cases = [
      [dockerfile, file('../../../../../../../../tmp/escaped-by-build', 'x')],
      [dockerfile, symlinkEntry('out', victim), file('out/written', 'x')],
      [dockerfile, device('null', 1, 3)],
    ];
    for (const entries of cases) {
      const r = await post(await tarBytes(entries));
      assert.equal(r.status, 400, r.text);
      assert.match(r.text, /unable to read the build context/);
    }
    assert.equal(existsSync('/tmp/escaped-by-build'), false);
    assert.deepEqual(readdirSync(victim), []);
    // Nothing of them is left in the daemon's scratch space.
    assert.deepEqual(readdirSync(join(d.dataRoot, 'tmp')).filter((n) => n.startsWith('build-context-')), []);
  });

  test('kill -9 of berthd in the middle of a RUN: the restarted daemon stops the step and clears its mount; the store still builds', async () => {
    const dir = join(work, 'killed');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo first > /first\nRUN echo running; sleep 301\n');
    const child = spawn(BERTH, ['build', '--progress=plain', dir], { env: { ...process.env, ...d.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    const deadline = Date.now() + 20_000;
    while (!/^running$/m.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /^running$/m);
    d.proc!.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    await d.startProcess();
    const leftovers = () => ({
      sleeping: spawnSync('pgrep', ['-f', 'sleep 301']).stdout.toString().trim(),
      mounts: readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(d.dataRoot) && l.includes('/tmp/build-')),
      runc: existsSync(join(d.dataRoot, 'runc')) ? readdirSync(join(d.dataRoot, 'runc')).filter((n) => n.startsWith('build-')) : [],
    });
    assert.deepEqual(leftovers(), { sleeping: '', mounts: [], runc: [] });
    // The finished step is still cached; the interrupted one runs again.
    writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox\nRUN echo first > /first\nRUN echo second > /second\n');
    const again = berthBuild(['-t', 'after-kill', dir]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Step 2\/3 : RUN echo first > \/first\n ---> Using cache/);
    assert.equal(runOut('after-kill', 'cat', '/first', '/second'), 'first\nsecond\n');
  });
});
