import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJsonLog, timeNs } from './jsonfile.ts';

const line = (log: string, stream = 'stdout', time = '2024-01-02T03:04:05.000000001Z') => JSON.stringify({ log, stream, time }) + '\n';

test('reads rotated files in order, with tail, since and until', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jsonlog-'));
  try {
    const p = join(dir, 'c-json.log');
    writeFileSync(`${p}.2`, line('a\n', 'stdout', '2024-01-01T00:00:01Z'));
    writeFileSync(`${p}.1`, line('b\n', 'stderr', '2024-01-01T00:00:02.5Z'));
    writeFileSync(p, line('c\n', 'stdout', '2024-01-01T00:00:03Z') + '{"log":"cut');
    const all = [];
    for await (const e of readJsonLog(p, 3)) all.push(e.log);
    assert.deepEqual(all, ['a\n', 'b\n', 'c\n']);
    const tail = [];
    for await (const e of readJsonLog(p, 3, { tail: 2 })) tail.push(e.log);
    assert.deepEqual(tail, ['b\n', 'c\n']);
    const window = [];
    for await (const e of readJsonLog(p, 3, { sinceNs: timeNs('2024-01-01T00:00:02Z'), untilNs: timeNs('2024-01-01T00:00:02.9Z') })) window.push(e.log);
    assert.deepEqual(window, ['b\n']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('follow yields appended lines across a rotation and stops when done', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'jsonlog-'));
  try {
    const p = join(dir, 'c-json.log');
    writeFileSync(p, line('1\n'));
    let finish!: () => void;
    const done = new Promise<void>((r) => (finish = r));
    const seen: string[] = [];
    const reader = (async () => {
      for await (const e of readJsonLog(p, 2, { follow: true, done })) seen.push(e.log);
    })();
    await new Promise((r) => setTimeout(r, 50));
    appendFileSync(p, line('2\n'));
    await new Promise((r) => setTimeout(r, 300));
    appendFileSync(p, line('2b\n')); // written just before the rotation, possibly unseen yet
    renameSync(p, `${p}.1`);
    writeFileSync(p, line('3\n'));
    await new Promise((r) => setTimeout(r, 400));
    finish();
    await reader;
    assert.deepEqual(seen, ['1\n', '2\n', '2b\n', '3\n']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
