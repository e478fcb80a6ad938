import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeImageConfig, processArgs } from './container-config.ts';

const image = { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], Entrypoint: ['/init'], WorkingDir: '/srv', User: 'daemon', Labels: { a: '1' }, ExposedPorts: { '80/tcp': {} } };

test('the request wins, Env and Labels merge by key, Cmd comes from the image only without one of its own', () => {
  const c = mergeImageConfig({ Env: ['A=2', 'B=3'], Cmd: ['echo', 'hi'], Labels: { b: '2' } }, image);
  assert.deepEqual(c.Env, ['PATH=/bin', 'A=2', 'B=3']);
  assert.deepEqual(c.Labels, { a: '1', b: '2' });
  assert.deepEqual(processArgs(c), ['/init', 'echo', 'hi']);
  assert.equal(c.WorkingDir, '/srv');
  assert.equal(c.User, 'daemon');
  assert.deepEqual(processArgs(mergeImageConfig({}, image)), ['/init', 'sh']);
});

test('an entrypoint of its own drops the image Cmd; an empty one clears the entrypoint', () => {
  assert.deepEqual(processArgs(mergeImageConfig({ Entrypoint: ['/bin/ls'] }, image)), ['/bin/ls']);
  assert.deepEqual(processArgs(mergeImageConfig({ Entrypoint: [''], Cmd: ['true'] }, image)), ['true']);
  assert.throws(() => processArgs(mergeImageConfig({ Entrypoint: [''] }, image)), /No command specified/);
});
