import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { BERTH, TestDaemon } from '../helpers/daemon.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('container lifecycle verbs and listing', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.startWithBusybox();
  });
  after(() => d.cleanup());

  test('kill -s delivers the signal; --stop-signal and --stop-timeout shape stop', async () => {
    // A trap on USR1 proves the signal arrived; the exit code says which.
    d.docker(['run', '-d', '--name', 'sig', 'busybox', 'sh', '-c', 'trap "exit 42" USR1; while true; do sleep 0.1; done']);
    await sleep(300);
    assert.equal(d.berth(['kill', '-s', 'USR1', 'sig']).stdout.trim(), 'sig');
    assert.equal(d.berth(['wait', 'sig']).stdout.trim(), '42');
    d.docker(['run', '-d', '--name', 'stopsig', '--stop-signal', 'USR1', 'busybox', 'sh', '-c', 'trap "exit 43" USR1; while true; do sleep 0.1; done']);
    await sleep(300);
    const t0 = Date.now();
    assert.equal(d.docker(['stop', 'stopsig']).code, 0);
    assert.ok(Date.now() - t0 < 5000, 'the stop signal ended it without waiting for the timeout');
    assert.equal(d.berth(['inspect', '--format', '{{.State.ExitCode}}', 'stopsig']).stdout.trim(), '43');
    d.berth(['run', '-d', '--name', 'stoptime', '--stop-timeout', '1', 'busybox', 'sleep', '100']);
    const t1 = Date.now();
    d.berth(['stop', 'stoptime']);
    const took = Date.now() - t1;
    assert.ok(took >= 900 && took < 5000, `--stop-timeout 1 waited about a second (${took} ms)`);
    assert.equal(d.berth(['inspect', '--format', '{{.State.ExitCode}}', 'stoptime']).stdout.trim(), '137');
    const notRunning = d.berth(['kill', 'stoptime']);
    assert.notEqual(notRunning.code, 0);
    assert.match(notRunning.stderr, /is not running/);
    d.berth(['rm', 'sig', 'stopsig', 'stoptime']);
  });

  test('rename, restart and start of an exited container', async () => {
    d.berth(['run', '-d', '--name', 'old', 'busybox', 'sh', '-c', 'echo started; sleep 100']);
    assert.equal(d.docker(['rename', 'old', 'new']).code, 0);
    assert.equal(d.berth(['inspect', '--format', '{{.Name}}', 'new']).stdout.trim(), '/new');
    assert.notEqual(d.berth(['inspect', 'old']).code, 0);
    const pid1 = d.berth(['inspect', '--format', '{{.State.Pid}}', 'new']).stdout.trim();
    assert.equal(d.docker(['restart', '-t', '0', 'new']).code, 0);
    const pid2 = d.berth(['inspect', '--format', '{{.State.Pid}} {{.State.Running}}', 'new']).stdout.trim();
    assert.notEqual(pid2.split(' ')[0], pid1);
    assert.equal(pid2.split(' ')[1], 'true');
    d.berth(['stop', '-t', '0', 'new']);
    assert.equal(d.berth(['start', 'new']).stdout.trim(), 'new');
    await sleep(200);
    assert.equal(d.berth(['logs', 'new']).stdout, 'started\nstarted\nstarted\n', 'logs keep every run');
    d.berth(['rm', '-f', 'new']);
  });

  test('logs -f follows until the container exits; --since and --until cut by time', async () => {
    d.berth(['run', '-d', '--name', 'follow', 'busybox', 'sh', '-c', 'for i in 1 2 3 4 5; do echo n$i; sleep 0.2; done']);
    const out = await new Promise<string>((resolve) => {
      const p = spawn(BERTH, ['logs', '-f', 'follow'], { env: { ...process.env, ...d.env } });
      let s = '';
      p.stdout.on('data', (b) => (s += b));
      p.on('exit', () => resolve(s));
    });
    assert.equal(out, 'n1\nn2\nn3\nn4\nn5\n', 'follow ends with the container');
    const ts = d.berth(['logs', '-t', 'follow']).stdout.trim().split('\n').map((l) => l.split(' ')[0]);
    const since = (Date.parse(ts[2]) / 1000).toFixed(3);
    const sinceLines = d.docker(['logs', '--since', since, 'follow']).stdout.trim().split('\n');
    assert.ok(sinceLines[0] === 'n3' || sinceLines[0] === 'n4', `since cuts the start: ${sinceLines}`);
    const untilLines = d.berth(['logs', '--until', since, 'follow']).stdout.trim().split('\n');
    assert.deepEqual(untilLines.slice(0, 2), ['n1', 'n2']);
    assert.ok(!untilLines.includes('n5'));
    d.berth(['rm', 'follow']);
  });

  test('ps: -a, -q, -n, -l, --no-trunc and the filters', () => {
    const a = d.berth(['run', '-d', '--name', 'alpha', '--label', 'tier=web', 'busybox', 'sleep', '100']).stdout.trim();
    const b = d.berth(['create', '--name', 'beta', 'busybox', 'true']).stdout.trim();
    d.berth(['run', '--name', 'gamma', 'busybox', 'sh', '-c', 'exit 5']);
    for (const cli of ['berth', 'docker'] as const) {
      const run = (args: string[]) => (cli === 'berth' ? d.berth(args) : d.docker(args)).stdout.trim().split('\n').filter(Boolean);
      assert.deepEqual(run(['ps', '--format', '{{.Names}}']), ['alpha']);
      assert.deepEqual(run(['ps', '-a', '--format', '{{.Names}}']).sort(), ['alpha', 'beta', 'gamma']);
      assert.deepEqual(run(['ps', '-l', '--format', '{{.Names}}']), ['gamma']);
      assert.deepEqual(run(['ps', '-n', '2', '--format', '{{.Names}}']), ['gamma', 'beta']);
      assert.deepEqual(run(['ps', '-q', '--no-trunc']), [a]);
      assert.deepEqual(run(['ps', '-a', '--filter', 'status=created', '--format', '{{.Names}}']), ['beta']);
      assert.deepEqual(run(['ps', '-a', '--filter', 'exited=5', '--format', '{{.Names}}']), ['gamma']);
      assert.deepEqual(run(['ps', '-a', '--filter', 'label=tier=web', '--format', '{{.Names}}']), ['alpha']);
      assert.deepEqual(run(['ps', '-a', '--filter', 'name=^/be', '--format', '{{.Names}}']), ['beta']);
      assert.deepEqual(run(['ps', '-a', '--filter', `id=${b.slice(0, 8)}`, '--format', '{{.Names}}']), ['beta']);
      assert.deepEqual(run(['ps', '-a', '--filter', 'ancestor=busybox', '--format', '{{.Names}}']).sort(), ['alpha', 'beta', 'gamma']);
      assert.deepEqual(run(['ps', '-a', '--filter', 'since=alpha', '--format', '{{.Names}}']).sort(), ['beta', 'gamma']);
      assert.deepEqual(run(['ps', '-a', '--filter', 'before=beta', '--format', '{{.Names}}']), ['alpha']);
      assert.match(run(['ps', '-a', '--filter', 'name=gamma', '--format', '{{.Status}}'])[0], /^Exited \(5\) /);
    }
    const bad = d.docker(['ps', '--filter', 'colour=red']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid filter 'colour'/);
    d.berth(['rm', '-f', 'alpha', 'beta', 'gamma']);
  });

  test('a --rm container that exits while berthd is down is removed at the next start; one that runs on keeps running', async () => {
    d.berth(['run', '-d', '--rm', '--name', 'gone-soon', 'busybox', 'sleep', '1']);
    d.berth(['run', '-d', '--rm', '--name', 'stays', 'busybox', 'sleep', '100']);
    d.berth(['run', '-d', '--name', 'exits-away', 'busybox', 'sh', '-c', 'sleep 1; exit 9']);
    await d.kill9();
    await sleep(1800);
    await d.startProcess();
    await sleep(500);
    assert.notEqual(d.berth(['inspect', 'gone-soon']).code, 0, 'removed');
    assert.equal(d.berth(['inspect', '--format', '{{.State.Status}}', 'stays']).stdout.trim(), 'running');
    assert.equal(d.berth(['inspect', '--format', '{{.State.Status}} {{.State.ExitCode}}', 'exits-away']).stdout.trim(), 'exited 9');
    d.berth(['rm', '-f', 'stays', 'exits-away']);
  });

  test('unknown and ambiguous container references get Docker-shaped errors', () => {
    for (const cli of ['berth', 'docker'] as const) {
      const r = cli === 'berth' ? d.berth(['stop', 'no-such-container']) : d.docker(['stop', 'no-such-container']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /No such container: no-such-container/);
    }
    // Make two containers whose IDs share a first hex digit, then use that digit alone.
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      ids.push(d.berth(['create', 'busybox', 'true']).stdout.trim());
      const first = ids.at(-1)![0];
      if (ids.filter((x) => x[0] === first).length === 2) {
        const r = d.docker(['inspect', '--type', 'container', first]);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /multiple IDs found with provided prefix/);
        break;
      }
    }
    d.berth(['rm', ...ids]);
  });

  test('container events: create, start, die and destroy', () => {
    const since = (Date.now() / 1000 - 0.5).toFixed(3);
    d.berth(['run', '--rm', '--name', 'evented', 'busybox', 'true']);
    const until = (Date.now() / 1000 + 0.5).toFixed(3);
    const r = d.docker(['events', '--since', since, '--until', until, '--filter', 'container=evented', '--format', '{{.Action}}']);
    assert.equal(r.code, 0, r.stderr);
    const actions = r.stdout.trim().split('\n');
    for (const a of ['create', 'start', 'die', 'destroy']) assert.ok(actions.includes(a), `${a} in ${actions}`);
    assert.ok(actions.indexOf('create') < actions.indexOf('start') && actions.indexOf('die') < actions.indexOf('destroy'));
  });
});
