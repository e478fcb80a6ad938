import assert from 'node:assert/strict';
import { test } from 'node:test';
import { silentLogger } from '../common/log.ts';
import { type ContainerRecord, type ContainerState, type ContainerStore, initialState } from '../metadata/containers.ts';
import { EventBus } from './events.ts';
import { HealthMonitor, type ProbeRuntime, probeArgs } from './health.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(what: string, f: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!f()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test('probeArgs: CMD runs as is, CMD-SHELL through /bin/sh -c, NONE and empty mean no check', () => {
  assert.deepEqual(probeArgs({ Test: ['CMD', 'curl', '-f', 'http://x/'] }), ['curl', '-f', 'http://x/']);
  assert.deepEqual(probeArgs({ Test: ['CMD-SHELL', 'test -f /ok || exit 1'] }), ['/bin/sh', '-c', 'test -f /ok || exit 1']);
  assert.equal(probeArgs({ Test: ['NONE'] }), undefined);
  assert.equal(probeArgs({ Test: [] }), undefined);
  assert.equal(probeArgs({}), undefined);
  assert.equal(probeArgs(undefined), undefined);
  assert.equal(probeArgs({ Test: ['CMD'] }), undefined);
});

/** A one-container store in memory: what the monitor reads and writes. */
function fakeStore(rec: ContainerRecord): ContainerStore {
  return {
    get: (id: string) => (id === rec.id ? structuredClone(rec) : undefined),
    setState: (id: string, s: ContainerState) => {
      if (id === rec.id) rec.state = structuredClone(s);
    },
  } as unknown as ContainerStore;
}

function container(healthcheck: Record<string, unknown>): ContainerRecord {
  return {
    id: 'c1', shortId: 'c1', name: 'web', image: 'busybox', imageId: 'sha256:x', created: new Date().toISOString(), restartCount: 0,
    config: { Healthcheck: healthcheck }, hostConfig: {},
    state: { ...initialState(), Status: 'running', Running: true, StartedAt: new Date().toISOString() },
  };
}

function setup(hc: Record<string, unknown>, probe: (n: number) => Promise<{ exitCode: number; output: string }>) {
  const rec = container(hc);
  const events = new EventBus();
  const seen: string[] = [];
  const ac = new AbortController();
  (async () => {
    for await (const e of events.subscribe({ signal: ac.signal })) seen.push(e.Action);
  })().catch(() => {});
  let calls = 0;
  const runtime: ProbeRuntime = { execProbe: (_c, _args, opts) => {
    calls++;
    return Promise.race([probe(calls), new Promise<never>((_r, reject) => opts.signal?.addEventListener('abort', () => reject(new Error('aborted'))))]);
  } };
  const m = new HealthMonitor({ store: fakeStore(rec), runtime, events, log: silentLogger });
  return { rec, m, seen, calls: () => calls, done: () => { m.close(); ac.abort(); } };
}

test('healthy after a success, unhealthy after Retries failures in a row, with events on each change and five log entries', async () => {
  const t = setup({ Test: ['CMD', 'check'], Interval: 20e6, Retries: 2 }, async (n) => ({ exitCode: n <= 2 ? 0 : 1, output: `run ${n}\n` }));
  t.m.start(t.rec);
  assert.equal(t.rec.state.Health?.Status, 'starting');
  await until('healthy', () => t.rec.state.Health?.Status === 'healthy');
  await until('unhealthy and five entries', () => t.rec.state.Health?.Status === 'unhealthy' && t.calls() >= 6);
  const h = t.rec.state.Health!;
  assert.equal(h.Status, 'unhealthy');
  assert.ok(h.FailingStreak >= 2);
  assert.equal(h.Log.length, 5);
  assert.equal(h.Log.at(-1)!.Output, `run ${t.calls()}\n`);
  t.done();
  assert.deepEqual(t.seen.filter((a) => a.startsWith('health_status')), ['health_status: healthy', 'health_status: unhealthy']);
});

test('failures during the start period do not count; a timeout is exit -1 with Docker\'s message', async () => {
  const t = setup({ Test: ['CMD', 'check'], Interval: 20e6, Timeout: 30e6, Retries: 1, StartPeriod: 400e6 }, () => new Promise(() => {}));
  t.m.start(t.rec);
  await until('a timed-out probe', () => (t.rec.state.Health?.Log.length ?? 0) >= 1);
  assert.ok(Date.now() < Date.parse(t.rec.state.StartedAt) + 400);
  assert.equal(t.rec.state.Health?.Status, 'starting', 'still starting inside the start period');
  assert.equal(t.rec.state.Health?.FailingStreak, 0);
  assert.ok(t.rec.state.Health!.Log.length >= 1);
  assert.equal(t.rec.state.Health!.Log[0].ExitCode, -1);
  assert.equal(t.rec.state.Health!.Log[0].Output, 'Health check exceeded timeout (30ms)');
  await until('unhealthy after the start period', () => t.rec.state.Health?.Status === 'unhealthy');
  t.done();
});

test('stop ends the checks, and a stopped container is not probed', async () => {
  const t = setup({ Test: ['CMD-SHELL', 'true'], Interval: 20e6 }, async () => ({ exitCode: 0, output: '' }));
  t.m.start(t.rec);
  await until('a probe', () => t.calls() >= 1);
  t.m.stop(t.rec.id);
  const n = t.calls();
  await sleep(80);
  assert.equal(t.calls(), n);
  t.rec.state = { ...t.rec.state, Running: false, Status: 'exited' };
  t.m.resume(t.rec);
  await sleep(60);
  assert.equal(t.calls(), n, 'resume skips a container that does not run');
  t.done();
});
