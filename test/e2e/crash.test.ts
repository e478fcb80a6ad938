import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH, TestDaemon } from '../helpers/daemon.ts';
import { dockerArchive, file } from '../helpers/tars.ts';

describe('crash safety and concurrency', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.startWithBusybox();
  });
  after(() => d.cleanup());

  const blobDir = () => join(d.dataRoot, 'content', 'blobs', 'sha256');
  const ingestDir = () => join(d.dataRoot, 'content', 'ingest');

  test('kill -9 in the middle of a load leaves a store the next start opens, with no half image', async () => {
    // Three 48 MB layers of random bytes: slow enough to be caught half-way.
    const big = await dockerArchive([{
      layers: [0, 1, 2].map((i) => [file(`blob${i}`, randomBytes(48 << 20))]),
      tags: ['half:1'],
    }]);
    const archive = join(d.dir, 'big.tar');
    writeFileSync(archive, big.tar);
    const before = new Set(readdirSync(blobDir()));
    const load = spawn(BERTH, ['load', '-i', archive], { env: { ...process.env, ...d.env }, stdio: 'ignore' });
    // Wait until the daemon is writing into the store, then kill it.
    const deadline = Date.now() + 20_000;
    let caught = false;
    while (Date.now() < deadline) {
      const ing = existsSync(ingestDir()) ? readdirSync(ingestDir()) : [];
      const written = ing.reduce((n, f) => { try { return n + statSync(join(ingestDir(), f)).size; } catch { return n; } }, 0)
        + readdirSync(blobDir()).filter((b) => !before.has(b)).length;
      if (written > 0) { caught = true; break; }
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.ok(caught, 'the load never started writing');
    await d.kill9();
    await new Promise<void>((r) => load.once('exit', () => r()));

    await d.startProcess();
    assert.equal(d.berth(['image', 'inspect', 'half:1']).code, 1, 'no half image is listed');
    assert.equal(d.berth(['images', '--format', '{{.Repository}}:{{.Tag}}']).stdout.trim(), 'busybox:latest');
    // The start-up GC removes what the dead load left; the ingest area is empty.
    const deadline2 = Date.now() + 10_000;
    while (Date.now() < deadline2 && readdirSync(blobDir()).some((b) => !before.has(b))) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(new Set(readdirSync(blobDir())), before);
    assert.deepEqual(readdirSync(ingestDir()), []);
    // And the same archive loads in full now.
    const r = d.berth(['load', '-i', archive]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', 'half:1']).stdout.trim(), big.ids[0]);
    d.berth(['rmi', 'half:1']);
  });

  test('two loads at once that share layers both land, sharing the blob', async () => {
    const shared = [file('shared', randomBytes(8 << 20))];
    const a = await dockerArchive([{ layers: [shared, [file('a', 'a')]], tags: ['share:a'] }]);
    const b = await dockerArchive([{ layers: [shared, [file('b', 'b')]], tags: ['share:b'] }]);
    const run = (tar: Buffer) => new Promise<number>((resolve) => {
      const p = spawn(BERTH, ['load'], { env: { ...process.env, ...d.env }, stdio: ['pipe', 'ignore', 'inherit'] });
      p.stdin.end(tar);
      p.once('exit', (code) => resolve(code ?? -1));
    });
    const codes = await Promise.all([run(a.tar), run(b.tar), run(a.tar)]);
    assert.deepEqual(codes, [0, 0, 0]);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', 'share:a']).stdout.trim(), a.ids[0]);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', 'share:b']).stdout.trim(), b.ids[0]);
    const layerA = d.berth(['image', 'inspect', '--format', '{{index .RootFS.Layers 0}}', 'share:a']).stdout.trim();
    const layerB = d.berth(['image', 'inspect', '--format', '{{index .RootFS.Layers 0}}', 'share:b']).stdout.trim();
    assert.equal(layerA, layerB);
    assert.ok(existsSync(join(blobDir(), layerA.slice(7))), 'one blob serves both images');
    // Removing one image keeps the shared layer for the other.
    d.berth(['rmi', 'share:a']);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(existsSync(join(blobDir(), layerA.slice(7))));
    const saved = d.berth(['save', 'share:b'], { binary: true });
    assert.equal(saved.code, 0);
    d.berth(['rmi', 'share:b']);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(!existsSync(join(blobDir(), layerA.slice(7))), 'the last user gone, GC removes the layer');
  });
});
