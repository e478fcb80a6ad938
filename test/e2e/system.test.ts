import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { BERTHD, TestDaemon, importBusybox, run } from '../helpers/daemon.ts';

function get(socket: string, path: string, method = 'GET'): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('daemon and system endpoints', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.start();
  });
  after(async () => {
    await d.cleanup();
  });

  test('ping, version negotiation and Docker error bodies', async () => {
    const ping = await get(d.socket, '/_ping');
    assert.equal(ping.body, 'OK');
    assert.equal(ping.headers['api-version'], '1.50');
    assert.equal((await get(d.socket, '/_ping', 'HEAD')).status, 200);
    assert.equal(JSON.parse((await get(d.socket, '/v1.45/version')).body).ApiVersion, '1.50');
    assert.equal(JSON.parse((await get(d.socket, '/version')).body).MinAPIVersion, '1.24');
    const tooNew = await get(d.socket, '/v1.99/version');
    assert.equal(tooNew.status, 400);
    assert.match(JSON.parse(tooNew.body).message, /client version 1.99 is too new/);
    assert.equal((await get(d.socket, '/v1.12/version')).status, 400);
    const missing = await get(d.socket, '/v1.50/images/nope/json');
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.body), { message: 'No such image: nope:latest' });
    assert.equal((await get(d.socket, '/v1.50/nothing/here')).status, 404);
  });

  test('version and info through berth and docker', () => {
    for (const r of [d.berth(['version']), d.docker(['version'])]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Server: berth/);
      assert.match(r.stdout, /API version:\s+1\.50/);
    }
    assert.equal(d.docker(['version', '--format', '{{.Server.APIVersion}}']).stdout.trim(), '1.50');
    assert.equal(d.berth(['version', '--format', '{{.Server.ApiVersion}}']).stdout.trim(), '1.50');
    importBusybox(d);
    for (const r of [d.berth(['info']), d.docker(['info'])]) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Images: 1/);
      assert.match(r.stdout, /Storage Driver: overlayfs/);
    }
    assert.equal(d.docker(['info', '--format', '{{.Images}} {{.DockerRootDir}}']).stdout.trim(), `1 ${d.dataRoot}`);
  });

  test('events: a window of past events, with filters, both ways', () => {
    const since = (Date.now() / 1000 - 1).toFixed(3);
    d.berth(['tag', 'busybox', 'evt:1']);
    d.berth(['rmi', 'evt:1']);
    const until = (Date.now() / 1000 + 0.5).toFixed(3);
    for (const cli of ['berth', 'docker'] as const) {
      const args = ['events', '--since', since, '--until', until, '--filter', 'type=image', '--filter', 'image=evt', '--format', '{{.Action}} {{.Actor.Attributes.name}}'];
      const r = cli === 'berth' ? d.berth(args) : d.docker(args);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n'), ['tag evt:1', 'untag evt:1']);
      const only = cli === 'berth' ? d.berth([...args.slice(0, 9), '--filter', 'event=untag', '--format', '{{.Action}}']) : d.docker([...args.slice(0, 9), '--filter', 'event=untag', '--format', '{{.Action}}']);
      assert.equal(only.stdout.trim(), 'untag');
    }
  });

  test('a second daemon on the same data root is refused', () => {
    const r = run(BERTHD, ['--data-root', d.dataRoot, '-H', `unix://${join(d.dir, 'other.sock')}`], { timeoutMs: 15_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /berthd is already running on this data root \(pid \d+/);
  });

  test('SIGTERM shuts down cleanly and a restart finds everything', async () => {
    assert.equal(await d.stop(), 0);
    assert.ok(!existsSync(d.socket), 'socket removed');
    assert.ok(!existsSync(join(d.dataRoot, 'berthd.pid')), 'pidfile removed');
    const r = d.berth(['images']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Cannot connect to the berth daemon at unix:\/\/.*\. Is the berth daemon running\?/);
    await d.startProcess();
    assert.equal(d.berth(['images', '--format', '{{.Repository}}']).stdout.trim(), 'busybox');
  });
});
