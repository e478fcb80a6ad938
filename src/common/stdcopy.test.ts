import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Deframer, frame, StdStream } from './stdcopy.ts';

test('frames round-trip across arbitrary chunk boundaries', () => {
  const wire = Buffer.concat([frame(StdStream.stdout, Buffer.from('hello\n')), frame(StdStream.stderr, Buffer.from('oops')), frame(StdStream.stdout, Buffer.alloc(0))]);
  assert.deepEqual([...wire.subarray(0, 8)], [1, 0, 0, 0, 0, 0, 0, 6]);
  for (const cut of [1, 3, 8, 9, 13, wire.length]) {
    const d = new Deframer();
    const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
    assert.deepEqual(got.map((g) => [g.stream, g.payload.toString()]), [[1, 'hello\n'], [2, 'oops'], [1, '']]);
  }
});
