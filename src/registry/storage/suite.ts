// The shared test suite every storage driver runs: the contract of driver.ts, checked through
// the interface only. A new driver (S3, …) passes it before the registry may use it.
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { isBerthError } from '../../common/errors.ts';
import type { StorageDriver } from './driver.ts';

async function readAll(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Collects what a driver's `send` writes. */
function sink(): { stream: Writable; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return {
    // Copies each chunk: a driver may reuse its buffers once a write has completed.
    stream: new Writable({ write(c: Buffer, _e, cb) { chunks.push(Buffer.from(c)); cb(); } }),
    bytes: () => Buffer.concat(chunks),
  };
}

export function storageDriverSuite(name: string, make: () => Promise<StorageDriver>): void {
  describe(`storage driver contract: ${name}`, () => {
    it('puts and gets small objects atomically, and answers undefined for absent ones', async () => {
      const d = await make();
      assert.equal(await d.getContent('a/b/c'), undefined);
      await d.putContent('a/b/c', 'one');
      await d.putContent('a/b/c', 'two');
      assert.equal((await d.getContent('a/b/c'))?.toString(), 'two');
      assert.deepEqual(await d.list('a/b'), ['c'], 'no temporary files show');
    });

    it('streams whole objects and inclusive ranges; an absent object is NotFound', async () => {
      const d = await make();
      const data = Buffer.from(Array.from({ length: 300_000 }, (_, i) => i % 251));
      await d.putContent('blob', data);
      assert.deepEqual(await readAll(await d.reader('blob')), data);
      assert.deepEqual(await readAll(await d.reader('blob', { start: 5, end: 9 })), data.subarray(5, 10));
      await assert.rejects(d.reader('nothing'), (e) => isBerthError(e, 'NotFound'));
      if (d.send) {
        const all = sink();
        await d.send('blob', all.stream);
        assert.deepEqual(all.bytes(), data);
        const part = sink();
        await d.send('blob', part.stream, { start: 131_000, end: 270_000 });
        assert.deepEqual(part.bytes(), data.subarray(131_000, 270_001));
        await assert.rejects(d.send('nothing', sink().stream), (e) => isBerthError(e, 'NotFound'));
      }
    });

    it('stats objects and prefixes, lists one level, deletes objects and prefixes', async () => {
      const d = await make();
      await d.putContent('p/x/1', '1');
      await d.putContent('p/x/2', '22');
      await d.putContent('p/y', '333');
      assert.equal((await d.stat('p/x/2'))?.size, 2);
      assert.equal((await d.stat('p/x'))?.isDirectory, true);
      assert.equal(await d.stat('p/z'), undefined);
      assert.deepEqual((await d.list('p')).sort(), ['x', 'y']);
      assert.deepEqual(await d.list('nowhere'), []);
      await d.delete('p/x');
      assert.deepEqual(await d.list('p'), ['y']);
      await d.delete('p/never');
    });

    it('appends through writers across opens, and moves atomically over an existing object', async () => {
      const d = await make();
      for (const part of ['hello ', 'world']) {
        const w = await d.writer('up/data');
        await pipeline(Readable.from([Buffer.from(part)]), w.stream);
        await w.commit();
      }
      assert.equal((await d.getContent('up/data'))?.toString(), 'hello world');
      await d.putContent('final/obj', 'old');
      await d.move('up/data', 'final/obj');
      assert.equal((await d.getContent('final/obj'))?.toString(), 'hello world');
      assert.equal(await d.stat('up/data'), undefined);
    });

    it('refuses paths that could leave its root', async () => {
      const d = await make();
      for (const p of ['../x', 'a/../../x', '/etc/passwd', 'a//b', './a', 'a/.', '', 'a\\b']) {
        await assert.rejects(d.putContent(p, 'x'), /bad path/, p);
        await assert.rejects(d.getContent(p), /bad path/, p);
      }
    });
  });
}
