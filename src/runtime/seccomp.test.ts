import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_CAPABILITIES } from './capabilities.ts';
import { isBerthError } from '../common/errors.ts';
import { DEFAULT_PROFILE, type OciSeccomp, defaultSeccomp, goArch, kernelAtLeast, materialiseProfile, parseDockerSeccomp } from './seccomp.ts';

const names = (p: OciSeccomp, action = 'SCMP_ACT_ALLOW') =>
  new Set((p.syscalls ?? []).filter((s) => s.action === action && !s.args).flatMap((s) => s.names));

test('defaults deny with EPERM and list the native and compat architectures', () => {
  const amd = defaultSeccomp(DEFAULT_CAPABILITIES, 'x86_64', '6.18.0');
  assert.equal(amd.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(amd.defaultErrnoRet, 1);
  assert.deepEqual(amd.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  const arm = defaultSeccomp(DEFAULT_CAPABILITIES, 'aarch64', '6.18.0');
  assert.deepEqual(arm.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  assert.equal(goArch('x64'), 'amd64');
});

test('architecture-specific syscalls follow the architecture', () => {
  const amd = names(defaultSeccomp(DEFAULT_CAPABILITIES, 'amd64', '6.18.0'));
  const arm = names(defaultSeccomp(DEFAULT_CAPABILITIES, 'arm64', '6.18.0'));
  assert.ok(amd.has('arch_prctl') && amd.has('modify_ldt'));
  assert.ok(!arm.has('arch_prctl'));
  assert.ok(arm.has('set_tls') && arm.has('cacheflush'));
  assert.ok(!amd.has('set_tls'));
});

test('capability-gated syscalls follow the capabilities', () => {
  const plain = defaultSeccomp(DEFAULT_CAPABILITIES, 'amd64', '6.18.0');
  const allowed = names(plain);
  assert.ok(allowed.has('read') && allowed.has('execve') && allowed.has('chroot'));
  for (const n of ['mount', 'unshare', 'setns', 'reboot', 'bpf', 'init_module', 'open_by_handle_at']) assert.ok(!allowed.has(n), n);
  // clone without CAP_SYS_ADMIN: only without namespace flags; clone3 answers ENOSYS.
  const clone = plain.syscalls?.find((s) => s.names.includes('clone'));
  assert.deepEqual(clone?.args, [{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
  const clone3 = plain.syscalls?.find((s) => s.names.includes('clone3'));
  assert.deepEqual(clone3, { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });

  const admin = defaultSeccomp([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE'], 'amd64', '6.18.0');
  const adminAllowed = names(admin);
  for (const n of ['mount', 'unshare', 'setns', 'clone', 'clone3', 'ptrace', 'kcmp']) assert.ok(adminAllowed.has(n), n);
  assert.ok(!admin.syscalls?.some((s) => s.action === 'SCMP_ACT_ERRNO'), 'no clone3 ENOSYS with CAP_SYS_ADMIN');
  assert.ok(!admin.syscalls?.some((s) => s.names.includes('clone') && s.args));
});

test('kernel-gated syscalls follow the kernel', () => {
  assert.ok(names(defaultSeccomp(DEFAULT_CAPABILITIES, 'amd64', '6.18.0')).has('ptrace'));
  assert.ok(!names(defaultSeccomp(DEFAULT_CAPABILITIES, 'amd64', '4.4.0-200-generic')).has('ptrace'));
  assert.ok(kernelAtLeast('6.18.0-rc1', '4.8'));
  assert.ok(kernelAtLeast('4.8', '4.8'));
  assert.ok(!kernelAtLeast('4.7.10', '4.8'));
});

test('socket and personality are allowed only with safe arguments', () => {
  const p = defaultSeccomp(DEFAULT_CAPABILITIES, 'amd64', '6.18.0');
  const socket = p.syscalls?.filter((s) => s.names.includes('socket')) ?? [];
  assert.deepEqual(socket.map((s) => s.args?.[0]), [
    { index: 0, value: 38, op: 'SCMP_CMP_LT' },
    { index: 0, value: 39, op: 'SCMP_CMP_EQ' },
    { index: 0, value: 40, op: 'SCMP_CMP_GT' },
  ]);
  assert.equal(p.syscalls?.filter((s) => s.names.includes('personality')).length, 5);
});

test('the profile is self-consistent', () => {
  const always = DEFAULT_PROFILE.rules[0].names;
  assert.ok(always.length > 300);
  assert.equal(new Set(always).size, always.length, 'no duplicate names');
  // Nothing gated by a capability or argument is also allowed unconditionally.
  for (const n of ['mount', 'clone', 'clone3', 'socket', 'personality', 'ptrace', 'chroot', 'bpf']) assert.ok(!always.includes(n), n);
  // JSON round trip is what runc reads.
  const p = defaultSeccomp(DEFAULT_CAPABILITIES, 'amd64', '6.18.0');
  assert.deepEqual(JSON.parse(JSON.stringify(p)), p);
});

test('reads profiles in Docker’s JSON format', () => {
  const text = JSON.stringify({
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    archMap: [
      { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] },
      { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: null },
    ],
    syscalls: [
      { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
      { name: 'mount', action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, excludes: { caps: ['CAP_SYS_ADMIN'] } },
    ],
  });
  const p = parseDockerSeccomp(text);
  const amd = materialiseProfile(p, ['CAP_CHOWN'], 'amd64', '6.1.0');
  assert.deepEqual(amd, {
    defaultAction: 'SCMP_ACT_ERRNO',
    defaultErrnoRet: 1,
    architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
    syscalls: [
      { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
    ],
  });
  assert.deepEqual(materialiseProfile(p, ['CAP_SYS_ADMIN'], 'arm64', '6.1.0').syscalls?.map((s) => s.names[0]), ['read', 'mount']);
  const flat = parseDockerSeccomp(JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], syscalls: [] }));
  assert.deepEqual(materialiseProfile(flat, [], 'amd64').architectures, ['SCMP_ARCH_X86_64']);
  assert.throws(() => parseDockerSeccomp('{'), (e) => isBerthError(e, 'InvalidArgument'));
  assert.throws(() => parseDockerSeccomp('{"syscalls":[]}'), (e) => isBerthError(e, 'InvalidArgument'));
});
