import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isBerthError } from '../common/errors.ts';
import { CAPABILITIES, DEFAULT_CAPABILITIES } from './capabilities.ts';
import { type HostFacts, RLIM_INFINITY, parseProcLimits } from './host.ts';
import { encodeSpec, type OciSpec } from './oci-spec.ts';
import {
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  type SpecOptions,
  adaptResources,
  buildExecProcess,
  buildRlimits,
  buildSpec,
  containerEnv,
  mergeTmpfsOptions,
  resourcesToOci,
  validateResources,
  validateSysctls,
} from './spec.ts';

/** A host like this one: no CAP_SYS_RESOURCE, nofile hard limit 20000, cgroup v1. */
const HOST: HostFacts = {
  capabilities: CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE'),
  rlimits: {
    RLIMIT_NOFILE: { soft: 20000, hard: 20000 },
    RLIMIT_NPROC: { soft: 96364, hard: 96364 },
    RLIMIT_CORE: { soft: 0, hard: RLIM_INFINITY },
    RLIMIT_MEMLOCK: { soft: 8388608, hard: 8388608 },
  },
  cgroupVersion: 1,
  arch: 'amd64',
  kernel: '6.18.0',
  oomScoreAdj: 0,
  swapAccounting: true,
  cpus: 2,
};

const base = (o: Partial<SpecOptions> = {}): SpecOptions => ({ id: 'c1', args: ['sh'], rootfs: '/r', host: HOST, hostDevices: [], ...o });
const invalid = (msg: string | RegExp) => (e: unknown) =>
  isBerthError(e, 'InvalidArgument') && (typeof msg === 'string' ? e.message === msg : msg.test(e.message));

test('a default container looks like Docker’s', () => {
  const s = buildSpec(base({ hostname: 'abc', env: ['FOO=1', 'PATH=/bin'] }));
  assert.equal(s.ociVersion, '1.0.2');
  assert.deepEqual(s.process.args, ['sh']);
  assert.deepEqual(s.process.env, ['PATH=/bin', 'HOSTNAME=abc', 'FOO=1']);
  assert.equal(s.process.cwd, '/');
  assert.deepEqual(s.process.user, { uid: 0, gid: 0 });
  assert.equal(s.process.terminal, false);
  assert.deepEqual(s.process.capabilities.bounding, DEFAULT_CAPABILITIES);
  assert.deepEqual(s.process.capabilities.effective, DEFAULT_CAPABILITIES);
  assert.deepEqual(s.process.capabilities.inheritable, []);
  assert.equal(s.hostname, 'abc');
  assert.deepEqual(s.root, { path: '/r', readonly: false });
  assert.deepEqual(
    s.linux.namespaces.map((n) => n.type),
    ['mount', 'network', 'uts', 'pid', 'ipc'],
    'cgroup v1: the host cgroup namespace, as Docker',
  );
  assert.equal(s.linux.cgroupsPath, '/berth/c1');
  assert.deepEqual(s.linux.maskedPaths, DEFAULT_MASKED_PATHS);
  assert.deepEqual(s.linux.readonlyPaths, DEFAULT_READONLY_PATHS);
  assert.ok(s.linux.maskedPaths?.includes('/proc/kcore'));
  assert.equal(s.linux.seccomp?.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(s.process.apparmorProfile, undefined);
  assert.deepEqual(s.linux.sysctl, { 'net.ipv4.ip_unprivileged_port_start': '0', 'net.ipv4.ping_group_range': '0 2147483647' });
  assert.deepEqual(
    s.mounts.map((m) => `${m.destination} ${m.type}`),
    ['/proc proc', '/dev tmpfs', '/dev/pts devpts', '/sys sysfs', '/sys/fs/cgroup cgroup', '/dev/mqueue mqueue', '/dev/shm tmpfs'],
  );
  assert.ok(s.mounts.find((m) => m.destination === '/dev/shm')?.options?.includes('size=67108864'));
  assert.ok(s.mounts.find((m) => m.destination === '/sys')?.options?.includes('ro'));
  const rules = s.linux.resources?.devices ?? [];
  assert.deepEqual(rules[0], { allow: false, access: 'rwm' });
  assert.ok(rules.some((r) => r.allow && r.major === 1 && r.minor === 3));
  assert.ok(rules.some((r) => !r.allow && r.major === 10 && r.minor === 229));
  assert.deepEqual(s.linux.devices, []);
});

test('privileged gets every host capability but not CAP_SYS_RESOURCE, no masks, no seccomp, all devices', () => {
  const dev = { type: 'c' as const, path: '/dev/kmsg', major: 1, minor: 11 };
  const s = buildSpec(base({ privileged: true, hostDevices: [dev] }));
  assert.deepEqual(s.process.capabilities.bounding, HOST.capabilities);
  assert.ok(!s.process.capabilities.bounding.includes('CAP_SYS_RESOURCE'));
  assert.ok(s.process.capabilities.effective.includes('CAP_SYS_ADMIN'));
  assert.deepEqual(s.linux.maskedPaths, []);
  assert.deepEqual(s.linux.readonlyPaths, []);
  assert.equal(s.linux.seccomp, undefined);
  assert.deepEqual(s.linux.resources?.devices, [{ allow: true, access: 'rwm' }]);
  assert.deepEqual(s.linux.devices, [dev]);
  assert.ok(s.mounts.find((m) => m.destination === '/sys')?.options?.includes('rw'));
});

test('cap-add/cap-drop ALL and the seccomp profile follow the capabilities', () => {
  const all = buildSpec(base({ capAdd: ['ALL'] }));
  assert.deepEqual(all.process.capabilities.bounding, HOST.capabilities);
  assert.ok(all.linux.seccomp?.syscalls?.some((s) => s.names.includes('mount')), 'CAP_SYS_ADMIN opens mount');
  const none = buildSpec(base({ capDrop: ['ALL'], capAdd: ['NET_BIND_SERVICE'] }));
  assert.deepEqual(none.process.capabilities.bounding, ['CAP_NET_BIND_SERVICE']);
  assert.ok(!none.linux.seccomp?.syscalls?.some((s) => s.names.includes('chroot')), 'no CAP_SYS_CHROOT, no chroot');
  assert.throws(() => buildSpec(base({ capAdd: ['SYS_RESOURCE'] })), invalid(/not available/));
});

test('a non-root user keeps only the bounding set', () => {
  const s = buildSpec(base({ user: { uid: 1000, gid: 1000, additionalGids: [10] } }));
  assert.deepEqual(s.process.user, { uid: 1000, gid: 1000, additionalGids: [10] });
  assert.deepEqual(s.process.capabilities.bounding, DEFAULT_CAPABILITIES);
  assert.deepEqual(s.process.capabilities.effective, []);
  assert.deepEqual(s.process.capabilities.permitted, []);
});

test('seccomp unconfined, no-new-privileges, tty env', () => {
  const s = buildSpec(base({ seccomp: 'unconfined', noNewPrivileges: true, tty: true, hostname: 'h' }));
  assert.equal(s.linux.seccomp, undefined);
  assert.equal(s.process.noNewPrivileges, true);
  assert.equal(s.process.terminal, true);
  assert.ok(s.process.env.includes('TERM=xterm'));
});

test('rlimits are clamped to the host’s hard limit', () => {
  const r = buildRlimits([{ name: 'nofile', soft: 50000, hard: 100000 }], HOST);
  assert.deepEqual(r, [{ type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 }]);
  assert.deepEqual(buildRlimits([{ name: 'nofile', soft: 1024, hard: 30000 }], HOST), [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 20000 }]);
  // Unlimited asks become the host's limit; unlimited hosts pass them on.
  assert.deepEqual(buildRlimits([{ name: 'memlock', soft: -1, hard: -1 }], HOST)[0], { type: 'RLIMIT_MEMLOCK', soft: 8388608, hard: 8388608 });
  assert.deepEqual(buildRlimits([{ name: 'core', soft: -1, hard: -1 }], HOST)[0], { type: 'RLIMIT_CORE', soft: RLIM_INFINITY, hard: RLIM_INFINITY });
  assert.throws(() => buildRlimits([{ name: 'bogus', soft: 1, hard: 1 }], HOST), invalid('invalid ulimit type: bogus'));
  assert.throws(() => buildRlimits([{ name: 'nofile', soft: 10, hard: 5 }], HOST), invalid(/soft limit must be less/));
});

test('Docker’s nofile default only when the host allows it', () => {
  assert.deepEqual(buildRlimits([], HOST), [], '20000 < 1048576: inherit the daemon’s limit');
  const roomy = { rlimits: { RLIMIT_NOFILE: { soft: 1048576, hard: 1048576 } } };
  assert.deepEqual(buildRlimits([], roomy), [{ type: 'RLIMIT_NOFILE', soft: 1048576, hard: 1048576 }]);
  assert.equal(buildSpec(base()).process.rlimits, undefined);
});

test('RLIM_INFINITY is written as an exact uint64', () => {
  const text = encodeSpec({ rlimits: [{ type: 'RLIMIT_CORE', soft: RLIM_INFINITY, hard: 5 }] });
  assert.equal(text, '{"rlimits":[{"type":"RLIMIT_CORE","soft":18446744073709551615,"hard":5}]}');
});

test('parses /proc/self/limits', () => {
  const l = parseProcLimits(
    'Limit                     Soft Limit           Hard Limit           Units\n' +
      'Max open files            20000                20000                files\n' +
      'Max core file size        0                    unlimited            bytes\n',
  );
  assert.deepEqual(l.RLIMIT_NOFILE, { soft: 20000, hard: 20000 });
  assert.deepEqual(l.RLIMIT_CORE, { soft: 0, hard: RLIM_INFINITY });
});

test('--cpus becomes quota over a 100ms period; the rest maps by name', () => {
  const r = resourcesToOci({
    nanoCpus: 1.5e9,
    cpuShares: 512,
    cpusetCpus: '0-1',
    cpusetMems: '0',
    memory: 64 << 20,
    memoryReservation: 32 << 20,
    memorySwap: 128 << 20,
    pidsLimit: 42,
    blkioWeight: 300,
    memorySwappiness: 10,
    oomKillDisable: true,
  });
  assert.deepEqual(r.cpu, { shares: 512, period: 100000, quota: 150000, cpus: '0-1', mems: '0' });
  assert.deepEqual(r.memory, { limit: 64 << 20, reservation: 32 << 20, swap: 128 << 20, swappiness: 10, disableOOMKiller: true });
  assert.deepEqual(r.pids, { limit: 42 });
  assert.deepEqual(r.blockIO, { weight: 300 });
  assert.deepEqual(resourcesToOci({ nanoCpus: 0.5e9 }).cpu, { period: 100000, quota: 50000 });
  assert.deepEqual(resourcesToOci({ cpuPeriod: 50000, cpuQuota: 25000 }).cpu, { period: 50000, quota: 25000 });
  assert.deepEqual(resourcesToOci({ pidsLimit: -1 }).pids, { limit: -1 });
  assert.deepEqual(resourcesToOci({}), {});
});

test('swap defaults to twice the memory, or unlimited without swap accounting', () => {
  assert.equal(adaptResources({ memory: 64 << 20 }, { swapAccounting: true }).resources.memorySwap, 128 << 20);
  assert.equal(adaptResources({ memory: 64 << 20, memorySwap: -1 }, { swapAccounting: true }).resources.memorySwap, -1);
  const none = adaptResources({ memory: 64 << 20 }, { swapAccounting: false });
  assert.equal(none.resources.memorySwap, -1);
  assert.equal(none.warnings.length, 1);
  const s = buildSpec(base({ resources: { memory: 64 << 20 } }));
  assert.deepEqual(s.linux.resources?.memory, { limit: 64 << 20, swap: 128 << 20 });
});

test('memory below 6MB and other bad resources are refused with Docker’s messages', () => {
  assert.throws(() => validateResources({ memory: 4 << 20 }), invalid('Minimum memory limit allowed is 6MB'));
  assert.throws(() => buildSpec(base({ resources: { memory: 1 << 20 } })), invalid('Minimum memory limit allowed is 6MB'));
  validateResources({ memory: 6 << 20 });
  assert.throws(() => validateResources({ memoryReservation: 1 << 20 }), invalid('Minimum memory reservation allowed is 6MB'));
  assert.throws(() => validateResources({ memory: 64 << 20, memorySwap: 32 << 20 }), invalid(/memoryswap limit should be larger/));
  assert.throws(() => validateResources({ memorySwap: 32 << 20 }), invalid(/always set the Memory limit/));
  assert.throws(() => validateResources({ memory: 8 << 20, memoryReservation: 16 << 20 }), invalid(/can not be less than memory reservation/));
  assert.throws(() => validateResources({ nanoCpus: 1e9, cpuQuota: 5000 }), invalid(/Nano CPUs and CPU Quota/));
  assert.throws(() => validateResources({ nanoCpus: 3e9 }, { cpus: 2 }), invalid('Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available'));
  assert.throws(() => validateResources({ cpuPeriod: 100 }), invalid(/CPU cfs period/));
  assert.throws(() => validateResources({ blkioWeight: 5 }), invalid('Range of blkio weight is from 10 to 1000'));
  assert.throws(() => validateResources({ memorySwappiness: 101 }), invalid(/swappiness/));
  assert.throws(() => validateResources({ cpusetCpus: '1-0' }), invalid(/cpuset cpus/));
});

test('namespaces: host, joined and pre-made', () => {
  const s = buildSpec(base({ hostname: 'h', namespaces: { network: 'host', pid: 'host', ipc: 'host', uts: 'host' } }));
  assert.deepEqual(s.linux.namespaces, [{ type: 'mount' }]);
  assert.equal(s.hostname, undefined, 'no hostname without a UTS namespace');
  assert.equal(s.linux.sysctl, undefined, 'no network sysctls in the host netns');
  const j = buildSpec(base({ namespaces: { network: { join: '/proc/42/ns/net' }, ipc: { join: '/proc/42/ns/ipc' }, cgroup: 'private' } }));
  assert.deepEqual(j.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/proc/42/ns/net' });
  assert.deepEqual(j.linux.namespaces.find((n) => n.type === 'ipc'), { type: 'ipc', path: '/proc/42/ns/ipc' });
  assert.ok(j.linux.namespaces.some((n) => n.type === 'cgroup' && !n.path));
  assert.equal(j.linux.sysctl, undefined, 'another container’s netns is not ours to tune');
  const own = buildSpec(base({ namespaces: { network: { path: '/run/berth/netns/c1' } } }));
  assert.equal(own.linux.sysctl?.['net.ipv4.ip_unprivileged_port_start'], '0');
  assert.equal(buildSpec(base({ host: { ...HOST, cgroupVersion: 2 } })).linux.namespaces.at(-1)?.type, 'cgroup');
});

test('sysctls must be namespaced', () => {
  validateSysctls({ 'net.core.somaxconn': '1024', 'kernel.shmmax': '1', 'fs.mqueue.msg_max': '20' });
  assert.throws(() => validateSysctls({ 'kernel.panic': '1' }), invalid(/not in a separate kernel namespace/));
  assert.throws(() => validateSysctls({ 'net.core.somaxconn': '1' }, { network: 'host' }), invalid(/host network/));
  const s = buildSpec(base({ sysctls: { 'net.ipv4.ip_unprivileged_port_start': '1024', 'kernel.msgmax': '9000' } }));
  assert.deepEqual(s.linux.sysctl, { 'net.ipv4.ip_unprivileged_port_start': '1024', 'net.ipv4.ping_group_range': '0 2147483647', 'kernel.msgmax': '9000' });
});

test('mounts: binds, tmpfs, etc files, dockerenv, init, and overriding the standard ones', () => {
  const s = buildSpec(
    base({
      readonlyRootfs: true,
      etcHosts: '/c/hosts',
      etcHostname: '/c/hostname',
      resolvConf: '/c/resolv.conf',
      dockerenv: '/c/.dockerenv',
      init: '/usr/bin/tini',
      shm: { sizeBytes: 1 << 20 },
      mounts: [
        { type: 'bind', source: '/data/x', destination: '/srv/data/x', readonly: true },
        { type: 'bind', source: '/data', destination: '/srv/', propagation: 'rslave' },
        { type: 'tmpfs', destination: '/tmp', options: ['size=64m', 'exec'] },
        { type: 'tmpfs', destination: '/dev/mqueue' },
      ],
    }),
  );
  const by = (d: string) => s.mounts.find((m) => m.destination === d);
  assert.deepEqual(by('/srv'), { destination: '/srv', type: 'bind', source: '/data', options: ['rbind', 'rslave'] });
  assert.deepEqual(by('/srv/data/x')?.options, ['rbind', 'rprivate', 'ro']);
  assert.ok(s.mounts.indexOf(by('/srv') as never) < s.mounts.indexOf(by('/srv/data/x') as never), 'parents first');
  assert.deepEqual(by('/tmp'), { destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['rprivate', 'nosuid', 'nodev', 'size=64m', 'exec'] });
  assert.equal(by('/dev/mqueue')?.type, 'tmpfs', 'a user mount replaces the standard one');
  assert.equal(s.mounts.filter((m) => m.destination === '/dev/mqueue').length, 1);
  assert.ok(by('/dev/shm')?.options?.includes('size=1048576'));
  assert.deepEqual(by('/etc/hosts'), { destination: '/etc/hosts', type: 'bind', source: '/c/hosts', options: ['rbind', 'rprivate', 'ro'] });
  assert.equal(by('/etc/resolv.conf')?.source, '/c/resolv.conf');
  assert.equal(by('/etc/hostname')?.source, '/c/hostname');
  assert.deepEqual(by('/.dockerenv'), { destination: '/.dockerenv', type: 'bind', source: '/c/.dockerenv', options: ['rbind', 'rprivate', 'ro'] });
  assert.deepEqual(by('/sbin/docker-init'), { destination: '/sbin/docker-init', type: 'bind', source: '/usr/bin/tini', options: ['bind', 'ro'] });
  assert.deepEqual(s.process.args, ['/sbin/docker-init', '--', 'sh']);
  assert.equal(s.root.readonly, true);
  assert.equal(s.linux.rootfsPropagation, 'rslave');
  // ipc none: no /dev/shm; a shared one is a bind.
  assert.ok(!buildSpec(base({ shm: false })).mounts.some((m) => m.destination === '/dev/shm'));
  assert.deepEqual(buildSpec(base({ shm: { source: '/dev/shm' } })).mounts.find((m) => m.destination === '/dev/shm')?.type, 'bind');
  assert.throws(() => buildSpec(base({ mounts: [{ type: 'tmpfs', destination: 'rel' }] })), invalid(/must be absolute/));
});

test('tmpfs option merging', () => {
  assert.deepEqual(mergeTmpfsOptions(['noexec', 'nosuid', 'nodev', 'exec', 'size=1m', 'size=2m', 'mode=1777']), ['nosuid', 'nodev', 'exec', 'size=2m', 'mode=1777']);
});

test('device cgroup rules and OOM score', () => {
  const s = buildSpec(base({ deviceCgroupRules: ['c 42:* rmw', 'b 8:0 r'], oomScoreAdj: 500 }));
  const rules = s.linux.resources?.devices ?? [];
  assert.deepEqual(rules.at(-2), { allow: true, type: 'c', major: 42, access: 'rmw' });
  assert.deepEqual(rules.at(-1), { allow: true, type: 'b', major: 8, minor: 0, access: 'r' });
  assert.equal(s.process.oomScoreAdj, 500);
  // Without CAP_SYS_RESOURCE the score cannot go below the daemon's.
  assert.equal(buildSpec(base({ oomScoreAdj: -500 })).process.oomScoreAdj, 0);
  assert.equal(buildSpec(base({ oomScoreAdj: -500, host: { ...HOST, capabilities: [...CAPABILITIES] } })).process.oomScoreAdj, -500);
  assert.throws(() => buildSpec(base({ oomScoreAdj: 2000 })), invalid(/oom score adj/));
  assert.throws(() => buildSpec(base({ deviceCgroupRules: ['x'] })), invalid(/invalid device cgroup format/));
  const dev = buildSpec(base({ devices: [{ pathOnHost: '/dev/null', pathInContainer: '/dev/mynull', cgroupPermissions: 'rw' }] }));
  assert.deepEqual(dev.linux.devices?.[0], { type: 'c', path: '/dev/mynull', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 });
  assert.deepEqual(dev.linux.resources?.devices?.at(-1), { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' });
});

test('no command is refused', () => {
  assert.throws(() => buildSpec(base({ args: [] })), invalid('No command specified'));
});

test('environment and exec processes', () => {
  assert.deepEqual(containerEnv(['A=1', 'PATH=/x'], 'h', true), ['PATH=/x', 'HOSTNAME=h', 'TERM=xterm', 'A=1']);
  const spec: OciSpec = buildSpec(base({ env: ['A=1'], cwd: '/w', noNewPrivileges: true, ulimits: [{ name: 'nofile', soft: 100, hard: 200 }] }));
  const p = buildExecProcess(spec, { args: ['ls'], env: ['A=2', 'B=3'], tty: true });
  assert.deepEqual(p.args, ['ls']);
  assert.equal(p.cwd, '/w');
  assert.ok(p.env.includes('A=2') && p.env.includes('B=3') && p.env.includes('TERM=xterm') && !p.env.includes('A=1'));
  assert.deepEqual(p.capabilities.bounding, DEFAULT_CAPABILITIES);
  assert.equal(p.noNewPrivileges, true);
  assert.deepEqual(p.rlimits, [{ type: 'RLIMIT_NOFILE', soft: 100, hard: 200 }]);
  const priv = buildExecProcess(spec, { args: ['ls'], privileged: true, host: HOST, user: { uid: 0, gid: 0, additionalGids: [] } });
  assert.deepEqual(priv.capabilities.effective, HOST.capabilities);
});
