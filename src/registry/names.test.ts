import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryError } from './errors.ts';
import { checkDigest, checkName, isRepositoryName, isTag } from './names.ts';

describe('repository names and tags', () => {
  it('accepts the grammar of the distribution spec', () => {
    for (const n of ['busybox', 'library/busybox', 'a/b/c/d', 'my-app', 'my--app', 'my_app', 'my__app', 'my.app', 'a0/1b', 'x'.repeat(255)]) {
      assert.equal(isRepositoryName(n), true, n);
    }
  });

  it('refuses upper case, dot segments, empty and malformed components, and overlong names', () => {
    for (const n of ['Busybox', '..', 'a/..', '../a', 'a/./b', 'a..b', 'a//b', '/a', 'a/', '_a', 'a_', 'a___b', '-a', 'a-', 'a.-b', 'a b', 'a%2fb', 'a:b', '', 'x'.repeat(256)]) {
      assert.equal(isRepositoryName(n), false, n);
    }
    assert.throws(() => checkName('UP'), (e) => e instanceof RegistryError && e.code === 'NAME_INVALID' && e.status === 400);
  });

  it('tells tags from everything else', () => {
    for (const t of ['latest', 'v1.2.3', '_x', 'A-b_c.d', 'x'.repeat(128)]) assert.equal(isTag(t), true, t);
    for (const t of ['', '.x', '-x', 'a/b', 'a:b', '..', 'x'.repeat(129)]) assert.equal(isTag(t), false, t);
  });

  it('checks digests: sha256 only, lower-case hex of the right length', () => {
    const good = `sha256:${'a'.repeat(64)}`;
    assert.equal(checkDigest(good), good);
    for (const d of [null, '', 'sha256:abc', `sha256:${'A'.repeat(64)}`, `sha512:${'a'.repeat(128)}`, `md5:${'a'.repeat(32)}`, `sha256:${'a'.repeat(64)}/../x`]) {
      assert.throws(() => checkDigest(d), (e) => e instanceof RegistryError && e.code === 'DIGEST_INVALID', String(d));
    }
  });
});
