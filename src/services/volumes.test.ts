import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseBind, parseMountSpec } from './volumes.ts';

test('-v grammar: named volumes get mode z, binds rprivate, a lone path is anonymous', () => {
  assert.deepEqual(parseBind('data:/data'), {
    type: 'volume', destination: '/data', name: 'data', source: '', mode: 'z', rw: true, propagation: '', anonymous: false, copyData: true, createSource: false,
  });
  assert.deepEqual(parseBind('/host/dir/:/mnt/:ro,rshared'), {
    type: 'bind', destination: '/mnt', name: '', source: '/host/dir/', mode: 'ro,rshared', rw: false, propagation: 'rshared', anonymous: false, copyData: true, createSource: false,
  });
  const anon = parseBind('/scratch');
  assert.equal(anon.type, 'volume');
  assert.equal(anon.anonymous, true);
  assert.equal(anon.name, '');
  assert.equal(parseBind('data:/data:nocopy').copyData, false);
});

test('-v mistakes are Docker\'s errors', () => {
  assert.throws(() => parseBind('/a:rw'), /invalid volume specification: '\/a:rw'/);
  assert.throws(() => parseBind('a:b:c:d'), /invalid volume specification/);
  assert.throws(() => parseBind('data:relative'), /mount path must be absolute/);
  assert.throws(() => parseBind('data:/x:bogus'), /invalid mode: bogus/);
  assert.throws(() => parseBind('data:/'), /destination can't be '\/'/);
  assert.throws(() => parseBind('data:/x:rshared'), /field BindOptions must not be specified/);
});

test('--mount entries: volume options, readonly, and what each type refuses', () => {
  const v = parseMountSpec({ Type: 'volume', Source: 'v1', Target: '/v/', ReadOnly: true, VolumeOptions: { NoCopy: true } });
  assert.equal(v.destination, '/v');
  assert.equal(v.rw, false);
  assert.equal(v.copyData, false);
  assert.equal(parseMountSpec({ Type: 'volume', Target: '/anon' }).anonymous, true);
  assert.equal(parseMountSpec({ Type: 'bind', Source: '/h', Target: '/c' }).propagation, 'rprivate');
  assert.throws(() => parseMountSpec({ Type: 'bind', Target: '/c' }), /field Source must not be empty/);
  assert.throws(() => parseMountSpec({ Type: 'volume', Source: 'x', Target: '/c', BindOptions: { Propagation: 'shared' } }), /BindOptions must not be specified/);
  assert.throws(() => parseMountSpec({ Type: 'volume', Source: 'x', Target: '/c', VolumeOptions: { DriverConfig: { Name: 'nfs' } } }), /plugin "nfs" not found/);
});
