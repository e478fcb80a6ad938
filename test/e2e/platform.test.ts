import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { TestDaemon, busyboxRootfs } from '../helpers/daemon.ts';

/** arm64 images run through qemu's binfmt handler, which scripts/setup registers. */
describe('--platform runs foreign images through qemu binfmt', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.start();
    const r = d.berth(['import', '--platform', 'linux/arm64', '--change', 'CMD ["sh"]', busyboxRootfs('arm64'), 'busybox:arm64']);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await d.cleanup();
  });

  test('binfmt is registered for aarch64', () => {
    assert.ok(existsSync('/proc/sys/fs/binfmt_misc/qemu-aarch64'), 'scripts/setup registers qemu-aarch64');
  });

  test('run --platform linux/arm64 prints aarch64 through both CLIs', () => {
    for (const r of [d.berth(['run', '--rm', '--platform', 'linux/arm64', 'busybox:arm64', 'uname', '-m']), d.docker(['run', '--rm', '--platform', 'linux/arm64', 'busybox:arm64', 'uname', '-m'])]) {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'aarch64');
    }
  });

  test('a platform that does not match is refused; none given, a warning', () => {
    const wrong = d.docker(['run', '--rm', '--pull', 'never', '--platform', 'linux/amd64', 'busybox:arm64', 'true']);
    assert.notEqual(wrong.code, 0);
    assert.match(wrong.stderr, /does not match the specified platform: wanted linux\/amd64, actual: linux\/arm64/);
    const warned = d.berth(['run', '--rm', 'busybox:arm64', 'uname', '-m']);
    assert.equal(warned.stdout.trim(), 'aarch64');
    assert.match(warned.stderr, /WARNING: The requested image's platform \(linux\/arm64\) does not match the detected host platform/);
  });
});
