import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Limiter, humanSize, progressBar, shortDigest } from './transfer.ts';

test('humanSize prints go-units sizes: decimal, four digits, no trailing zeros', () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(999), '999B');
  assert.equal(humanSize(2_211_000), '2.211MB');
  assert.equal(humanSize(2_200_000), '2.2MB');
  assert.equal(humanSize(1_500_000_000), '1.5GB');
});

test('progressBar draws Docker\'s 50-column bar with current/total', () => {
  // The numbers are padded to 8 columns, as Docker's `%8v`.
  assert.equal(progressBar(0, 100), `[>${' '.repeat(50)}]       0B/100B`);
  assert.equal(progressBar(50, 100), `[${'='.repeat(25)}>${' '.repeat(25)}]      50B/100B`);
  assert.equal(progressBar(100, 100), `[${'='.repeat(50)}>]     100B/100B`);
  assert.equal(progressBar(5, 0), '      5B');
  assert.equal(shortDigest(`sha256:${'ab'.repeat(32)}`), 'abababababab');
});

test('Limiter runs at most n tasks at once, in order', async () => {
  const l = new Limiter(2);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all([1, 2, 3, 4, 5].map((i) => l.run(async () => {
    running++;
    peak = Math.max(peak, running);
    order.push(i);
    await new Promise((r) => setTimeout(r, 5));
    running--;
  })));
  assert.equal(peak, 2);
  assert.deepEqual(order, [1, 2, 3, 4, 5]);
});
