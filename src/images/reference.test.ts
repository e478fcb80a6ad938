import { test } from 'node:test';
import assert from 'node:assert/strict';
import { familiarString, formatReference, parseReference, withDefaultTag } from './reference.ts';

const D = 'sha256:' + 'a'.repeat(64);

test('normalises like Docker', () => {
  const cases: [string, string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36', 'busybox:1.36'],
    ['user/app', 'docker.io/user/app:latest', 'user/app:latest'],
    ['docker.io/library/busybox', 'docker.io/library/busybox:latest', 'busybox:latest'],
    ['index.docker.io/library/busybox:x', 'docker.io/library/busybox:x', 'busybox:x'],
    ['localhost:5000/app', 'localhost:5000/app:latest', 'localhost:5000/app:latest'],
    ['localhost/app:v1', 'localhost/app:v1', 'localhost/app:v1'],
    ['127.0.0.1:5000/a/b/c:t', '127.0.0.1:5000/a/b/c:t', '127.0.0.1:5000/a/b/c:t'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`, `busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`, `busybox:1@${D}`],
    ['a_b-c__d/f--g', 'docker.io/a_b-c__d/f--g:latest', 'a_b-c__d/f--g:latest'],
  ];
  for (const [input, full, familiar] of cases) {
    const r = withDefaultTag(parseReference(input));
    assert.equal(formatReference(r), full, input);
    assert.equal(familiarString(r), familiar, input);
  }
});

test('refuses malformed references', () => {
  for (const bad of ['', 'Busybox', 'a//b', 'a:', ':tag', 'a@sha256:abc', 'a/..', '../x', 'a b', '-a', 'a:' + 'x'.repeat(129), 'a/' + 'b'.repeat(260)]) {
    assert.throws(() => parseReference(bad), (e: any) => e.code === 'InvalidArgument' && /invalid reference format/.test(e.message), bad);
  }
  assert.throws(() => parseReference('Busybox'), /must be lowercase/);
});
