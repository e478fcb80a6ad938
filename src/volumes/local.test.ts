import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dirSize, resolveInRoot, validateLocalOptions } from './local.ts';

test('resolveInRoot follows links as if the root were /, never out of it', async () => {
  const root = mkdtempSync(join(tmpdir(), 'berth-root-'));
  mkdirSync(join(root, 'real/data'), { recursive: true });
  mkdirSync(join(root, 'etc'));
  symlinkSync('/real', join(root, 'abs'));
  symlinkSync('../../../../../etc', join(root, 'climb'));
  symlinkSync('real/data', join(root, 'rel'));
  assert.equal(await resolveInRoot(root, '/abs/data'), join(root, 'real/data'));
  assert.equal(await resolveInRoot(root, '/rel'), join(root, 'real/data'));
  assert.equal(await resolveInRoot(root, '/climb'), join(root, 'etc'), 'a climbing link stops at the root');
  assert.equal(await resolveInRoot(root, '/real/../../..'), root);
  assert.equal(await resolveInRoot(root, '/missing/x'), undefined);
});

test('local driver options are checked as Docker checks them', () => {
  validateLocalOptions({ type: 'tmpfs', device: 'tmpfs', o: 'size=10m' });
  validateLocalOptions({ type: 'none', o: 'bind', device: '/srv' });
  assert.throws(() => validateLocalOptions({ colour: 'red' }), /invalid option: "colour"/);
  assert.throws(() => validateLocalOptions({ o: 'bind' }), /missing required option: "device"/);
});

test('dirSize counts file bytes, hard links once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-size-'));
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'a'), '12345');
  writeFileSync(join(dir, 'sub/b'), '123');
  assert.equal(await dirSize(dir), 8);
});
