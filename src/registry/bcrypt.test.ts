import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bcryptHash, bcryptVerify, piWords } from './bcrypt.ts';

describe('bcrypt', () => {
  it("computes Blowfish's initial state: the published first and last words of P and S", () => {
    const w = piWords();
    assert.equal(w[0], 0x243f6a88);
    assert.equal(w[17], 0x8979fb1b);
    assert.equal(w[18], 0xd1310ba6);
    assert.equal(w[18 + 255], 0x6e85076a);
    assert.equal(w[18 + 256], 0x4b7a70e9);
    assert.equal(w[w.length - 1], 0x3ac372e6);
  });

  it('verifies a known $2a$ vector and refuses a wrong password', () => {
    // From the OpenBSD test vectors: password "U*U", cost 5.
    const hash = '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW';
    assert.equal(bcryptVerify('U*U', hash), true);
    assert.equal(bcryptVerify('U*V', hash), false);
    assert.equal(bcryptVerify('', '$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy'), true);
  });

  it('agrees with htpasswd -B both ways', () => {
    const made = spawnSync('htpasswd', ['-nbB', 'alice', 'pa:ss wörd'], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const hash = made.stdout.trim().slice('alice:'.length);
    assert.equal(bcryptVerify('pa:ss wörd', hash), true);
    assert.equal(bcryptVerify('pa:ss word', hash), false);
    const file = join(mkdtempSync(join(tmpdir(), 'berth-bcrypt-')), 'htpasswd');
    writeFileSync(file, `bob:${bcryptHash('s3cret', 5)}\n`);
    assert.equal(spawnSync('htpasswd', ['-vb', file, 'bob', 's3cret']).status, 0);
    assert.notEqual(spawnSync('htpasswd', ['-vb', file, 'bob', 'wrong']).status, 0);
  });

  it('uses only the first 72 bytes of a password, as bcrypt does', () => {
    const hash = bcryptHash('x'.repeat(72), 4);
    assert.equal(bcryptVerify('x'.repeat(80), hash), true);
    assert.equal(bcryptVerify('x'.repeat(71), hash), false);
  });

  it('answers false for hashes that are not bcrypt', () => {
    for (const h of ['', '$apr1$abc$def', '$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW', '$2a$99$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW']) {
      assert.equal(bcryptVerify('U*U', h), false, h);
    }
  });
});
