import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EscapeMatcher, parseDetachKeys } from './detach-keys.ts';

test('parseDetachKeys: ctrl- keys and plain characters, as docker', () => {
  assert.deepEqual([...parseDetachKeys('ctrl-p,ctrl-q')!], [16, 17]);
  assert.deepEqual([...parseDetachKeys('ctrl-a,x')!], [1, 120]);
  assert.deepEqual([...parseDetachKeys('ctrl-@,ctrl-[')!], [0, 27]);
  assert.equal(parseDetachKeys('ctrl-'), undefined);
  assert.equal(parseDetachKeys('alt-x'), undefined);
  assert.equal(parseDetachKeys(''), undefined);
});

test('EscapeMatcher holds back a partial sequence and lets it through when it breaks', () => {
  const m = new EscapeMatcher(parseDetachKeys('ctrl-p,ctrl-q')!);
  assert.deepEqual(m.push(Buffer.from('ab\x10')), { pass: Buffer.from('ab'), detached: false });
  assert.deepEqual(m.push(Buffer.from('c')), { pass: Buffer.from('\x10c'), detached: false });
  assert.deepEqual(m.push(Buffer.from('x\x10\x10')), { pass: Buffer.from('x\x10'), detached: false });
  assert.deepEqual(m.push(Buffer.from('\x11rest')), { pass: Buffer.from(''), detached: true });
  assert.equal(new EscapeMatcher(Buffer.from([1])).push(Buffer.from('a\x01b')).detached, true);
});
