import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFilters, pathMatch, parseGoDuration, matchLabels } from './filters.ts';

test('parses both filter encodings and refuses unknown keys', () => {
  assert.deepEqual([...parseFilters('{"dangling":{"true":true}}', ['dangling'])], [['dangling', ['true']]]);
  assert.deepEqual([...parseFilters('{"label":["a=b","c"]}', ['label'])], [['label', ['a=b', 'c']]]);
  assert.throws(() => parseFilters('{"foo":["x"]}', ['dangling']), /invalid filter 'foo'/);
  assert.throws(() => parseFilters('not json', ['dangling']), /invalid filter/);
});

test('path.Match semantics', () => {
  assert.ok(pathMatch('*:latest', 'busybox:latest'));
  assert.ok(!pathMatch('*:latest', 'library/busybox:latest'));
  assert.ok(pathMatch('bus?box', 'busybox'));
  assert.ok(pathMatch('[a-c]*', 'busybox'));
  assert.ok(!pathMatch('busy', 'busybox'));
  assert.ok(pathMatch('a.b', 'a.b') && !pathMatch('a.b', 'axb'));
});

test('durations and labels', () => {
  assert.equal(parseGoDuration('1h30m'), 5_400_000);
  assert.equal(parseGoDuration('10s'), 10_000);
  assert.equal(parseGoDuration('x'), undefined);
  assert.ok(matchLabels(['a', 'b=c'], { a: '', b: 'c' }));
  assert.ok(!matchLabels(['b=d'], { b: 'c' }));
});
