import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../common/errors.ts';
import {
  CAPABILITIES,
  DEFAULT_CAPABILITIES,
  capsFromStatus,
  decodeCapMask,
  encodeCapMask,
  hostBoundingSet,
  mergeCapabilities,
  normalizeCapability,
} from './capabilities.ts';

const ALL = [...CAPABILITIES];
const NO_SYS_RESOURCE = ALL.filter((c) => c !== 'CAP_SYS_RESOURCE');

test('decodes capability masks', () => {
  assert.deepEqual(decodeCapMask('0000000000000001'), ['CAP_CHOWN']);
  assert.deepEqual(decodeCapMask('00000000a80425fb'), [...DEFAULT_CAPABILITIES].sort((a, b) => CAPABILITIES.indexOf(a) - CAPABILITIES.indexOf(b)));
  // This host's CapBnd: everything up to CAP_CHECKPOINT_RESTORE but CAP_SYS_RESOURCE (bit 24).
  assert.deepEqual(decodeCapMask('000001fffeffffff'), NO_SYS_RESOURCE);
  assert.equal(encodeCapMask(NO_SYS_RESOURCE).toString(16), '1fffeffffff');
  assert.equal(encodeCapMask(DEFAULT_CAPABILITIES).toString(16), 'a80425fb');
});

test('reads a status text and the real bounding set', () => {
  const status = 'Name:\tx\nCapInh:\t0000000000000000\nCapBnd:\t000001fffeffffff\n';
  assert.deepEqual(capsFromStatus(status, 'CapBnd'), NO_SYS_RESOURCE);
  assert.deepEqual(capsFromStatus(status, 'CapInh'), []);
  const real = hostBoundingSet();
  assert.ok(real.includes('CAP_CHOWN'));
});

test('normalises names', () => {
  assert.equal(normalizeCapability('sys_admin'), 'CAP_SYS_ADMIN');
  assert.equal(normalizeCapability('CAP_NET_ADMIN'), 'CAP_NET_ADMIN');
  assert.equal(normalizeCapability('all'), 'ALL');
});

test('default set, add and drop', () => {
  assert.deepEqual(mergeCapabilities({}, ALL), DEFAULT_CAPABILITIES);
  const caps = mergeCapabilities({ add: ['net_admin'], drop: ['CAP_MKNOD', 'chown'] }, ALL);
  assert.ok(caps.includes('CAP_NET_ADMIN'));
  assert.ok(!caps.includes('CAP_MKNOD'));
  assert.ok(!caps.includes('CAP_CHOWN'));
  assert.equal(caps.length, DEFAULT_CAPABILITIES.length - 1);
});

test('cap-add ALL gives every host capability but the dropped ones, never one the host lacks', () => {
  const caps = mergeCapabilities({ add: ['ALL'], drop: ['NET_ADMIN'] }, NO_SYS_RESOURCE);
  assert.ok(!caps.includes('CAP_SYS_RESOURCE'));
  assert.ok(!caps.includes('CAP_NET_ADMIN'));
  assert.equal(caps.length, NO_SYS_RESOURCE.length - 1);
});

test('cap-drop ALL keeps only the added ones', () => {
  assert.deepEqual(mergeCapabilities({ drop: ['ALL'] }, ALL), []);
  assert.deepEqual(mergeCapabilities({ drop: ['all'], add: ['chown', 'kill'] }, ALL), ['CAP_CHOWN', 'CAP_KILL']);
});

test('privileged is the host bounding set', () => {
  assert.deepEqual(mergeCapabilities({ privileged: true }, NO_SYS_RESOURCE), NO_SYS_RESOURCE);
  assert.deepEqual(mergeCapabilities({ privileged: true, drop: ['ALL'] }, NO_SYS_RESOURCE), NO_SYS_RESOURCE);
});

test('the default set is intersected with the host', () => {
  const host = ALL.filter((c) => c !== 'CAP_MKNOD');
  assert.ok(!mergeCapabilities({}, host).includes('CAP_MKNOD'));
});

test('unknown and unavailable capabilities are refused', () => {
  assert.throws(
    () => mergeCapabilities({ add: ['CAP_FOO'] }, ALL),
    (e) => isBerthError(e, 'InvalidArgument') && e.message === 'unknown capability: "CAP_FOO"',
  );
  assert.throws(() => mergeCapabilities({ drop: ['bogus'] }, ALL), (e) => isBerthError(e, 'InvalidArgument'));
  assert.throws(
    () => mergeCapabilities({ add: ['SYS_RESOURCE'] }, NO_SYS_RESOURCE),
    (e) => isBerthError(e, 'InvalidArgument') && /not available/.test(e.message),
  );
  // Dropping what the host lacks anyway is harmless.
  assert.deepEqual(mergeCapabilities({ drop: ['SYS_RESOURCE'] }, NO_SYS_RESOURCE), DEFAULT_CAPABILITIES);
});
