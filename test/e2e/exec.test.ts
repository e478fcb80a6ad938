import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { BERTH, DOCKER, TestDaemon } from '../helpers/daemon.ts';

const CLIS = ['berth', 'docker'] as const;
type Cli = (typeof CLIS)[number];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One Engine API call over the daemon's socket: status and parsed body. */
function api(d: TestDaemon, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request({
      socketPath: d.socket, method, path: `/v1.45${path}`,
      headers: payload ? { 'Content-Type': 'application/json', 'Content-Length': String(payload.length) } : {},
    }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch { /* not JSON */ }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** A private tmux server for terminal sessions. */
class Tmux {
  readonly sock = `berth-exec-test-${process.pid}`;
  static ensureInstalled(): void {
    if (spawnSync('tmux', ['-V']).status === 0) return;
    spawnSync('apt-get', ['install', '-y', '-qq', 'tmux'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (spawnSync('tmux', ['-V']).status !== 0) throw new Error('tmux is not installed and apt-get could not install it');
  }
  run(...args: string[]): string {
    const r = spawnSync('tmux', ['-L', this.sock, ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }
  /** A 120x40 session running `cmd`; the pane stays, printing EXITED <code>, when it ends. */
  start(name: string, cmd: string, env: Record<string, string>): void {
    const exports = Object.entries(env).map(([k, v]) => `${k}='${v}'`).join(' ');
    this.run('new-session', '-d', '-s', name, '-x', '120', '-y', '40', `env ${exports} ${cmd}; echo EXITED $?; sleep 600`);
  }
  capture(name: string): string {
    return this.run('capture-pane', '-p', '-t', name);
  }
  keys(name: string, ...keys: string[]): void {
    this.run('send-keys', '-t', name, ...keys);
  }
  async waitFor(name: string, re: RegExp, ms = 15_000): Promise<string> {
    const deadline = Date.now() + ms;
    let text = '';
    while (Date.now() < deadline) {
      text = this.capture(name);
      if (re.test(text)) return text;
      await sleep(100);
    }
    throw new Error(`pane ${name} never matched ${re}:\n${text}`);
  }
  kill(): void {
    spawnSync('tmux', ['-L', this.sock, 'kill-server'], { stdio: 'ignore' });
  }
}

describe('exec, attach and TTY sessions through berth and docker', () => {
  let d: TestDaemon;
  const tmux = new Tmux();
  const cli = (which: Cli, args: string[], opts?: Parameters<TestDaemon['berth']>[1]) => (which === 'berth' ? d.berth(args, opts) : d.docker(args, opts));
  const bin = (which: Cli) => (which === 'berth' ? BERTH : `${DOCKER}`);
  const termEnv = () => ({ ...d.env, DOCKER_CONFIG: join(d.dir, 'docker-config'), TERM: 'xterm' });

  before(async () => {
    Tmux.ensureInstalled();
    // A session that stays: killing the last one would stop the server while the next test starts one.
    tmux.run('new-session', '-d', '-s', 'keep', 'sleep 3600');
    d = await TestDaemon.startWithBusybox();
    const r = d.berth(['run', '-d', '--name', 'host', 'busybox', 'sleep', '1000']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    tmux.kill();
    await d.cleanup();
  });

  test('exec prints the output, keeps stdout and stderr apart and exits with the exit code', () => {
    for (const c of CLIS) {
      const r = cli(c, ['exec', 'host', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.equal(r.code, 3, `${c}: ${r.stderr}`);
      assert.equal(r.stdout, 'out\n', c);
      assert.equal(r.stderr, 'err\n', c);
      assert.equal(cli(c, ['exec', 'host', 'true']).code, 0, c);
    }
  });

  test('a missing command exits 127, one that cannot run 126', () => {
    for (const c of CLIS) {
      const missing = cli(c, ['exec', 'host', 'no-such-command']);
      assert.equal(missing.code, 127, `${c}: ${missing.stdout}${missing.stderr}`);
      assert.match(missing.stdout + missing.stderr, /executable file not found in \$PATH/);
      const noexec = cli(c, ['exec', 'host', '/etc/passwd']);
      assert.equal(noexec.code, 126, `${c}: ${noexec.stdout}${noexec.stderr}`);
    }
  });

  test('exec -e, --env-file, -w and -u', () => {
    const envFile = join(d.dir, 'exec.env');
    writeFileSync(envFile, '# comment\nFROM_FILE=yes\n');
    for (const c of CLIS) {
      const r = cli(c, ['exec', '-e', 'A=1', '--env-file', envFile, '-w', '/tmp', '-u', '1000:1001', 'host', 'sh', '-c', 'echo $A $FROM_FILE $(pwd) $(id -u):$(id -g)']);
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.equal(r.stdout, '1 yes /tmp 1000:1001\n', c);
      const root = cli(c, ['exec', 'host', 'sh', '-c', 'id -u; pwd']);
      assert.equal(root.stdout, '0\n/\n', `${c}: defaults are the container's user and working dir`);
    }
  });

  test('exec --privileged gets every capability; run -t output is unframed', () => {
    for (const c of CLIS) {
      const priv = cli(c, ['exec', '--privileged', 'host', 'sh', '-c', 'grep CapEff /proc/self/status']);
      const plain = cli(c, ['exec', 'host', 'sh', '-c', 'grep CapEff /proc/self/status']);
      assert.equal(priv.code, 0, `${c}: ${priv.stderr}`);
      assert.ok(BigInt(`0x${priv.stdout.split(/\s+/)[1]}`) > BigInt(`0x${plain.stdout.split(/\s+/)[1]}`), `${c}: ${priv.stdout} vs ${plain.stdout}`);
      const t = cli(c, ['run', '-t', '--rm', 'busybox', 'echo', 'hi']);
      assert.equal(t.stdout, 'hi\r\n', c);
    }
  });

  test('exec -d runs in the background', async () => {
    for (const c of CLIS) {
      const r = cli(c, ['exec', '-d', 'host', 'sh', '-c', `sleep 0.2; echo done > /tmp/bg-${c}`]);
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.equal(r.stdout, '', c);
      let out = '';
      for (let i = 0; i < 50 && out !== 'done\n'; i++) {
        await sleep(100);
        out = cli(c, ['exec', 'host', 'cat', `/tmp/bg-${c}`]).stdout;
      }
      assert.equal(out, 'done\n', c);
    }
  });

  test('exec -i passes piped stdin and ends it', () => {
    for (const c of CLIS) {
      const r = cli(c, ['exec', '-i', 'host', 'sh', '-c', 'cat; echo end'], { input: 'one\ntwo\n' });
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.equal(r.stdout, 'one\ntwo\nend\n', c);
    }
  });

  test('exec on a stopped container is a 409 "is not running"', async () => {
    const r = d.berth(['run', '--name', 'stopped', 'busybox', 'true']);
    assert.equal(r.code, 0, r.stderr);
    for (const c of CLIS) {
      const x = cli(c, ['exec', 'stopped', 'true']);
      assert.notEqual(x.code, 0, c);
      assert.match(x.stderr, /container [0-9a-f]{64} is not running/, c);
    }
    const res = await api(d, 'POST', '/containers/stopped/exec', { Cmd: ['true'] });
    assert.equal(res.status, 409);
    assert.match(res.body.message, /is not running/);
    assert.equal((await api(d, 'POST', '/containers/host/exec', { Cmd: [] })).status, 400, 'no command');
    assert.equal((await api(d, 'GET', '/exec/0123456789abcdef/json')).status, 404);
  });

  test('exec inspect: Running, ExitCode, Pid, ProcessConfig, ContainerID', async () => {
    const host = (await api(d, 'GET', '/containers/host/json')).body;
    const created = await api(d, 'POST', '/containers/host/exec', { Cmd: ['sh', '-c', 'sleep 0.5; exit 7'], User: '0', AttachStdout: true });
    assert.equal(created.status, 201);
    const id = created.body.Id as string;
    const before = (await api(d, 'GET', `/exec/${id}/json`)).body;
    assert.equal(before.Running, false);
    assert.equal(before.ExitCode, null);
    const started = await api(d, 'POST', `/exec/${id}/start`, { Detach: true });
    assert.equal(started.status, 200);
    const running = (await api(d, 'GET', `/exec/${id}/json`)).body;
    assert.equal(running.Running, true);
    assert.ok(running.Pid > 0);
    assert.equal(running.ContainerID, host.Id);
    assert.deepEqual(running.ProcessConfig, { tty: false, entrypoint: 'sh', arguments: ['-c', 'sleep 0.5; exit 7'], privileged: false, user: '0' });
    let info = running;
    for (let i = 0; i < 100 && info.Running; i++) {
      await sleep(100);
      info = (await api(d, 'GET', `/exec/${id}/json`)).body;
    }
    assert.equal(info.Running, false);
    assert.equal(info.ExitCode, 7);
    assert.equal((await api(d, 'POST', `/exec/${id}/start`, { Detach: true })).status, 409, 'an exec runs once');
  });

  test('the daemon notices detach keys on a TTY exec stream: the stream ends, the process runs on', async () => {
    const created = await api(d, 'POST', '/containers/host/exec', { Cmd: ['sh'], Tty: true, AttachStdin: true, AttachStdout: true, DetachKeys: 'ctrl-a,d' });
    const id = created.body.Id as string;
    assert.equal((await api(d, 'POST', '/containers/host/exec', { Cmd: ['sh'], DetachKeys: 'bogus-key' })).status, 400);
    const sock = connect(d.socket);
    await new Promise((r) => sock.once('connect', r));
    const body = JSON.stringify({ Detach: false, Tty: true });
    sock.write(`POST /v1.45/exec/${id}/start HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    let text = '';
    sock.on('data', (b: Buffer) => (text += b.toString('latin1')));
    const ended = new Promise((r) => sock.once('end', r));
    for (let i = 0; i < 50 && !/# /.test(text); i++) await sleep(100);
    assert.match(text, /^HTTP\/1.1 101/);
    sock.write('echo $((3*4))\n');
    for (let i = 0; i < 50 && !/^12\r?$/m.test(text); i++) await sleep(100);
    assert.match(text, /^12\r?$/m);
    sock.write('\x01d');
    await ended;
    const info = (await api(d, 'GET', `/exec/${id}/json`)).body;
    assert.equal(info.Running, true, 'the shell still runs after the detach');
    sock.destroy();
    process.kill(info.Pid, 'SIGKILL');
  });

  test('run -i with piped stdin: StdinOnce closes the container stdin at EOF', () => {
    for (const c of CLIS) {
      const r = cli(c, ['run', '-i', '--rm', 'busybox', 'cat'], { input: 'hello\n' });
      assert.equal(r.code, 0, `${c}: ${r.stderr}`);
      assert.equal(r.stdout, 'hello\n', c);
    }
  });

  for (const c of CLIS) {
    test(`${c} run -it under tmux: a raw terminal, its size, resize, exit`, async () => {
      const s = `run-${c}`;
      tmux.start(s, `${bin(c)} run -it --rm busybox sh`, termEnv());
      await tmux.waitFor(s, /# ?$/m);
      tmux.keys(s, 'echo $((6*7)); stty size', 'Enter');
      const text = await tmux.waitFor(s, /^40 120\s*$/m);
      assert.match(text, /^42\s*$/m);
      tmux.run('resize-window', '-t', s, '-x', '100', '-y', '30');
      await sleep(300);
      tmux.keys(s, 'stty size', 'Enter');
      await tmux.waitFor(s, /^30 100\s*$/m);
      tmux.keys(s, 'exit 5', 'Enter');
      await tmux.waitFor(s, /EXITED 5/);
      tmux.run('kill-session', '-t', s);
    });

    test(`${c} exec -it under tmux: a shell in the running container, resize, exit code`, async () => {
      const s = `exec-${c}`;
      tmux.start(s, `${bin(c)} exec -it host sh`, termEnv());
      await tmux.waitFor(s, /# ?$/m);
      tmux.keys(s, 'echo $((6*7)); stty size; tty', 'Enter');
      const text = await tmux.waitFor(s, /^\/dev\/pts\/\d+\s*$/m);
      assert.match(text, /^42\s*$/m);
      assert.match(text, /^40 120\s*$/m);
      tmux.run('resize-window', '-t', s, '-x', '90', '-y', '25');
      await sleep(300);
      tmux.keys(s, 'stty size', 'Enter');
      await tmux.waitFor(s, /^25 90\s*$/m);
      tmux.keys(s, 'exit 4', 'Enter');
      await tmux.waitFor(s, /EXITED 4/);
      tmux.run('kill-session', '-t', s);
    });

    test(`${c} start -ai under tmux: the created container's shell, sized, its exit code`, async () => {
      const name = `sa-${c}`;
      assert.equal(cli(c, ['create', '-it', '--name', name, 'busybox', 'sh']).code, 0);
      const s = `start-${c}`;
      tmux.start(s, `${bin(c)} start -ai ${name}`, termEnv());
      await tmux.waitFor(s, /# ?$/m);
      tmux.keys(s, 'echo $((6*7)); stty size', 'Enter');
      const text = await tmux.waitFor(s, /^40 120\s*$/m);
      assert.match(text, /^42\s*$/m);
      tmux.keys(s, 'exit 2', 'Enter');
      await tmux.waitFor(s, /EXITED 2/);
      tmux.run('kill-session', '-t', s);
    });

    test(`${c}: detach keys leave the container running, attach comes back`, async () => {
      const name = `dk-${c}`;
      const s = `detach-${c}`;
      tmux.start(s, `${bin(c)} run -it --name ${name} busybox sh`, termEnv());
      await tmux.waitFor(s, /# ?$/m);
      tmux.keys(s, 'C-p', 'C-q');
      await tmux.waitFor(s, /EXITED 0/);
      const st = (await api(d, 'GET', `/containers/${name}/json`)).body.State;
      assert.equal(st.Running, true, 'ctrl-p ctrl-q detached without stopping the shell');
      tmux.run('kill-session', '-t', s);
      // Back in with attach, a custom detach sequence, then out again.
      const a = `attach-${c}`;
      tmux.start(a, `${bin(c)} attach --detach-keys ctrl-a,x ${name}`, termEnv());
      await sleep(1000);
      tmux.keys(a, 'echo $((5*5))', 'Enter');
      await tmux.waitFor(a, /^25\s*$/m);
      tmux.keys(a, 'C-a', 'x');
      // docker attach reports a detach as "read escape sequence", exit 1; berth does the same.
      const out = await tmux.waitFor(a, /EXITED \d+/);
      assert.match(out, /read escape sequence\s+EXITED 1/);
      assert.equal((await api(d, 'GET', `/containers/${name}/json`)).body.State.Running, true);
      tmux.run('kill-session', '-t', a);
      // And attach until the shell exits: attach returns its exit code.
      tmux.start(a, `${bin(c)} attach ${name}`, termEnv());
      await sleep(1000);
      tmux.keys(a, 'exit 6', 'Enter');
      await tmux.waitFor(a, /EXITED 6/);
      tmux.run('kill-session', '-t', a);
    });
  }
});
