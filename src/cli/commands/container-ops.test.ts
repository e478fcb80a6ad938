import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bytesSize, statsRow } from './container-ops.ts';

test('bytesSize is go-units BytesSize: binary units, four significant digits', () => {
  assert.equal(bytesSize(0), '0B');
  assert.equal(bytesSize(1023), '1023B');
  assert.equal(bytesSize(344 * 1024), '344KiB');
  assert.equal(bytesSize(32 * 1024 * 1024), '32MiB');
  assert.equal(bytesSize(1.5 * 1024 ** 3), '1.5GiB');
  assert.equal(bytesSize(1234567), '1.177MiB');
});

test('statsRow does the docker CLI\'s arithmetic', () => {
  const row = statsRow({
    id: 'a'.repeat(64), name: '/web', read: '2024-01-01T00:00:00Z',
    cpu_stats: { cpu_usage: { total_usage: 3_000_000_000 }, system_cpu_usage: 20_000_000_000, online_cpus: 2 },
    precpu_stats: { cpu_usage: { total_usage: 2_000_000_000 }, system_cpu_usage: 10_000_000_000 },
    memory_stats: { usage: 10 * 1024 * 1024, limit: 100 * 1024 * 1024, stats: { total_inactive_file: 2 * 1024 * 1024 } },
    pids_stats: { current: 7 },
    blkio_stats: { io_service_bytes_recursive: [{ op: 'Read', value: 1_500_000 }, { op: 'Write', value: 2000 }, { op: 'read', value: 500_000 }] },
    networks: { eth0: { rx_bytes: 1234, tx_bytes: 0 } },
  });
  assert.deepEqual(row, {
    ID: 'aaaaaaaaaaaa', Container: 'web', Name: 'web', CPUPerc: '20.00%', MemUsage: '8MiB / 100MiB', MemPerc: '8.00%',
    NetIO: '1.23kB / 0B', BlockIO: '2MB / 2kB', PIDs: '7',
  });
  // Nothing measured yet: zeros, never NaN.
  const empty = statsRow({ id: 'b'.repeat(64), name: '/idle', read: '' });
  assert.equal(empty.CPUPerc, '0.00%');
  assert.equal(empty.MemPerc, '0.00%');
  assert.equal(empty.MemUsage, '0B / 0B');
});
