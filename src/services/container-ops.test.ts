import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../common/errors.ts';
import { parsePs } from './container-ops.ts';

const PS = `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 07:00 ?        00:00:01 /sbin/init
root         100      90  0 07:01 ?        00:00:00 sh -c while true; do sleep 1; done
root         101     100  0 07:01 ?        00:00:00 sleep 1
`;

test('parsePs keeps only the container\'s pids, and the last column keeps its spaces', () => {
  const r = parsePs(PS, new Set([100, 101]));
  assert.deepEqual(r.Titles, ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD']);
  assert.deepEqual(r.Processes, [
    ['root', '100', '90', '0', '07:01', '?', '00:00:00', 'sh -c while true; do sleep 1; done'],
    ['root', '101', '100', '0', '07:01', '?', '00:00:00', 'sleep 1'],
  ]);
  assert.deepEqual(parsePs('  PID STAT COMMAND\n  101 S    sleep\n', new Set([101])).Processes, [['101', 'S', 'sleep']]);
});

test('parsePs without a PID column is Docker\'s error', () => {
  assert.throws(() => parsePs('USER COMMAND\nroot sh\n', new Set([1])), (e) => isBerthError(e, 'InvalidArgument') && /Couldn't find PID field in ps output/.test(e.message));
});
