import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TestDaemon } from '../helpers/daemon.ts';

const CLIS = ['berth', 'docker'] as const;
const hostCapBnd = () => /CapBnd:\s+([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1];
const hostNofileHard = () => Number(/Max open files\s+\d+\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))![1]);

/** Capabilities, seccomp, no-new-privileges, ulimits and log rotation, asserted from inside the container. */
describe('security options and logging', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.startWithBusybox();
  });
  after(() => d.cleanup());
  const cli = (which: (typeof CLIS)[number], args: string[]) => (which === 'berth' ? d.berth(args) : d.docker(args));
  const status = (c: (typeof CLIS)[number], flags: string[], field: string) => {
    const r = cli(c, ['run', '--rm', ...flags, 'busybox', 'sh', '-c', `grep ^${field}: /proc/self/status`]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split(':')[1].trim();
  };

  test("Docker's default capability set, and cap-add / cap-drop", () => {
    for (const c of CLIS) {
      assert.equal(status(c, [], 'CapEff'), '00000000a80425fb');
      assert.equal(status(c, ['--cap-drop', 'ALL', '--cap-add', 'NET_BIND_SERVICE'], 'CapEff'), '0000000000000400');
      const chown = cli(c, ['run', '--rm', '--cap-drop', 'CHOWN', 'busybox', 'sh', '-c', 'touch /tmp/f && chown 1 /tmp/f']);
      assert.notEqual(chown.code, 0);
      assert.match(chown.stderr, /Operation not permitted/);
    }
  });

  test('--privileged grants exactly the host bounding set (this host lacks CAP_SYS_RESOURCE) and can mount', () => {
    const want = hostCapBnd().padStart(16, '0');
    for (const c of CLIS) {
      assert.equal(status(c, ['--privileged'], 'CapEff'), want);
      const r = cli(c, ['run', '--rm', '--privileged', 'busybox', 'sh', '-c', 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && echo mounted']);
      assert.equal(r.stdout.trim(), 'mounted', r.stderr);
    }
  });

  test('seccomp is on by default, off with seccomp=unconfined; no-new-privileges sets NoNewPrivs', () => {
    for (const c of CLIS) {
      assert.equal(status(c, [], 'Seccomp'), '2');
      assert.equal(status(c, ['--security-opt', 'seccomp=unconfined'], 'Seccomp'), '0');
      assert.equal(status(c, [], 'NoNewPrivs'), '0');
      assert.equal(status(c, ['--security-opt', 'no-new-privileges'], 'NoNewPrivs'), '1');
    }
  });

  test('ulimits apply, and never above the host hard limit', () => {
    const hard = hostNofileHard();
    for (const c of CLIS) {
      const r = cli(c, ['run', '--rm', '--ulimit', 'nofile=1024:2048', 'busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn']);
      assert.deepEqual(r.stdout.trim().split('\n'), ['1024', '2048'], `${c}: ${r.stderr}`);
      const big = cli(c, ['run', '--rm', '--ulimit', `nofile=${hard * 10}:${hard * 10}`, 'busybox', 'sh', '-c', 'ulimit -Hn']);
      assert.equal(big.code, 0, big.stderr);
      assert.ok(Number(big.stdout.trim()) <= hard, `clamped to the host's ${hard}: ${big.stdout}`);
    }
  });

  test('json-file logs rotate with max-size and max-file, and logs reads across the files', () => {
    const id = d.docker(['run', '-d', '--log-opt', 'max-size=20k', '--log-opt', 'max-file=3', 'busybox', 'sh', '-c',
      'i=0; while [ $i -lt 3000 ]; do echo "line $i of the rotation test"; i=$((i+1)); done']).stdout.trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    assert.equal(d.berth(['wait', id]).stdout.trim(), '0');
    const dir = join(d.dataRoot, 'containers', id);
    const logs = readdirSync(dir).filter((f) => f.includes('-json.log')).sort();
    assert.deepEqual(logs, [`${id}-json.log`, `${id}-json.log.1`, `${id}-json.log.2`]);
    for (const f of logs) assert.ok(statSync(join(dir, f)).size <= 20 * 1024, `${f} is within max-size`);
    const tail = d.berth(['logs', '--tail', '3', id]).stdout.trim().split('\n');
    assert.deepEqual(tail, ['line 2997 of the rotation test', 'line 2998 of the rotation test', 'line 2999 of the rotation test']);
    const all = d.docker(['logs', id]).stdout.trim().split('\n');
    assert.ok(all.length > 300 && all.length < 3000, `older lines rotated away: ${all.length} kept`);
    assert.equal(all.at(-1), 'line 2999 of the rotation test');
    const n = (l: string) => Number(l.split(' ')[1]);
    assert.ok(all.every((l, i) => i === 0 || n(l) === n(all[i - 1]) + 1), 'what is kept has no gap');
    d.berth(['rm', id]);
  });
});
