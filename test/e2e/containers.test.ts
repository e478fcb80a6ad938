import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestDaemon } from '../helpers/daemon.ts';

const CLIS = ['berth', 'docker'] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('containers through berth and docker', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.startWithBusybox();
  });
  after(() => d.cleanup());
  const cli = (which: (typeof CLIS)[number], args: string[], opts?: Parameters<TestDaemon['berth']>[1]) => (which === 'berth' ? d.berth(args, opts) : d.docker(args, opts));

  test('run prints the output, keeps stdout and stderr apart and returns the exit code', () => {
    for (const c of CLIS) {
      const r = cli(c, ['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
      assert.equal(r.code, 3, r.stderr);
      assert.equal(r.stdout, 'out\n');
      assert.equal(r.stderr, 'err\n');
    }
    assert.equal(d.berth(['ps', '-aq']).stdout.trim(), '', '--rm removed every container');
  });

  test('a missing command exits 127 and one that cannot run exits 126, as with Docker', () => {
    for (const c of CLIS) {
      const missing = cli(c, ['run', '--rm', 'busybox', 'no-such-command']);
      assert.equal(missing.code, 127);
      assert.match(missing.stderr, /executable file not found in \$PATH/);
      assert.equal(cli(c, ['run', '--rm', 'busybox', '/etc/passwd']).code, 126);
    }
    assert.equal(d.berth(['ps', '-aq']).stdout.trim(), '', '--rm removed the containers that never ran');
  });

  test('PID, UTS and mount isolation: only its own processes, its own hostname, its own root', () => {
    for (const c of CLIS) {
      const r = cli(c, ['run', '--rm', '--name', `iso-${c}`, 'busybox', 'sh', '-c', 'ps -o pid,comm | tail -n +2; hostname; ls /; cat /proc/1/cmdline | tr "\\0" " "']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      const pids = lines.filter((l) => /^\s*\d+\s/.test(l)).map((l) => Number(l.trim().split(/\s+/)[0]));
      assert.equal(pids[0], 1, 'PID 1 is the command');
      assert.ok(pids.every((p) => p < 20), `only the container's processes: ${pids}`);
      assert.match(lines.find((l) => /^[a-f0-9]{12}$/.test(l)) ?? '', /^[a-f0-9]{12}$/, 'hostname is the short ID');
      assert.ok(r.stdout.includes('.dockerenv') || r.stdout.includes('bin'), r.stdout);
      assert.match(r.stdout, /sh -c ps/);
    }
    assert.equal(d.docker(['run', '--rm', '-h', 'web1', 'busybox', 'hostname']).stdout.trim(), 'web1');
  });

  test('resource limits land in the cgroup files', () => {
    for (const c of CLIS) {
      const r = cli(c, ['run', '--rm', '-m', '64m', '--pids-limit', '64', '--cpus', '0.5', '--cpu-shares', '512', 'busybox', 'sh', '-c',
        'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/cpu/cpu.shares']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), [String(64 * 1024 * 1024), '64', '50000', '100000', '512']);
    }
  });

  test('env, workdir, user and entrypoint', () => {
    for (const c of CLIS) {
      const r = cli(c, ['run', '--rm', '-e', 'GREETING=hi there', '-w', '/tmp', '-u', '1:1', '--entrypoint', 'sh', 'busybox', '-c', 'echo "$GREETING"; pwd; id -u; id -g']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), ['hi there', '/tmp', '1', '1']);
    }
  });

  test('--read-only refuses writes, --tmpfs gives a writable place, and a bind mount keeps its data', () => {
    const host = mkdtempSync(join(d.dir, 'bind-'));
    writeFileSync(join(host, 'in.txt'), 'from the host\n');
    for (const c of CLIS) {
      const ro = cli(c, ['run', '--rm', '--read-only', '--tmpfs', '/scratch', '-v', `${host}:/data`, 'busybox', 'sh', '-c',
        `touch /should-fail 2>/dev/null && echo wrote-root; echo ok > /scratch/x && cat /scratch/x; cat /data/in.txt; echo ${c} >> /data/out.txt`]);
      assert.equal(ro.code, 0, ro.stderr);
      assert.deepEqual(ro.stdout.trim().split('\n'), ['ok', 'from the host']);
    }
    assert.equal(readFileSync(join(host, 'out.txt'), 'utf8'), 'berth\ndocker\n');
    const missing = d.berth(['run', '--rm', '-v', '/no/such/dir:/x', 'busybox', 'true']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /bind source path does not exist: \/no\/such\/dir/);
  });

  test('detached containers: ps, logs, stop after the timeout, and Docker\'s 409 for a taken name', async () => {
    const id = d.berth(['run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done']).stdout.trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    const taken = d.docker(['run', '-d', '--name', 'ticker', 'busybox', 'true']);
    assert.notEqual(taken.code, 0);
    assert.match(taken.stderr, /Conflict\. The container name "\/ticker" is already in use/);
    await sleep(600);
    for (const c of CLIS) {
      assert.match(cli(c, ['ps', '--format', '{{.Names}} {{.Status}}']).stdout, /^ticker Up /m);
      const logs = cli(c, ['logs', '--tail', '2', 'ticker']).stdout.trim().split('\n');
      assert.equal(logs.length, 2);
      assert.match(logs[1], /^tick \d+$/);
    }
    assert.match(d.docker(['logs', '-t', '--tail', '1', 'ticker']).stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z tick \d+\n$/);
    // sh as PID 1 ignores SIGTERM: stop waits its timeout, then kills.
    const t0 = Date.now();
    assert.equal(d.docker(['stop', '-t', '1', 'ticker']).stdout.trim(), 'ticker');
    assert.ok(Date.now() - t0 >= 900, 'stop waited for the timeout');
    assert.equal(d.berth(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', 'ticker']).stdout.trim(), 'exited 137');
    assert.match(d.berth(['ps', '-a', '--format', '{{.Status}}', '--filter', 'name=ticker']).stdout, /^Exited \(137\)/);
    assert.equal(d.berth(['rm', 'ticker']).code, 0);
    assert.notEqual(d.berth(['inspect', 'ticker']).code, 0);
  });

  test('docker stop $(docker ps -q) stops everything', () => {
    for (let i = 0; i < 3; i++) d.docker(['run', '-d', '--stop-signal', 'KILL', 'busybox', 'sleep', '300']);
    const ids = d.docker(['ps', '-q']).stdout.trim().split('\n');
    assert.equal(ids.length, 3);
    const r = d.docker(['stop', ...ids]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(d.docker(['ps', '-q']).stdout.trim(), '');
    assert.equal(d.docker(['container', 'prune', '-f']).code, 0);
    assert.equal(d.docker(['ps', '-aq']).stdout.trim(), '');
  });

  test('a running container survives kill -9 of berthd, with its logs continuous and its exit recorded', async () => {
    d.berth(['run', '-d', '--name', 'survivor', 'busybox', 'sh', '-c', 'for i in $(seq 1 30); do echo line $i; sleep 0.1; done; exit 7']);
    await sleep(500);
    await d.kill9();
    await sleep(800);
    await d.startProcess();
    const state = d.berth(['inspect', '--format', '{{.State.Running}}', 'survivor']).stdout.trim();
    assert.equal(state, 'true', 'still running after the daemon came back');
    assert.equal(d.berth(['wait', 'survivor']).stdout.trim(), '7');
    const lines = d.berth(['logs', 'survivor']).stdout.trim().split('\n');
    assert.deepEqual(lines, Array.from({ length: 30 }, (_, i) => `line ${i + 1}`), 'no gap in the logs');
    d.berth(['rm', 'survivor']);
  });
});
