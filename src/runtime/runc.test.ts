// Real containers: busybox rootfs + buildSpec + runc. Needs root and runc; skipped otherwise.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname as hostHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { isBerthError } from '../common/errors.ts';
import { DEFAULT_CAPABILITIES, decodeCapMask } from './capabilities.ts';
import { readHostFacts, rlimitLess } from './host.ts';
import { encodeSpec } from './oci-spec.ts';
import { Runc, type RunResult } from './runc.ts';
import { type SpecOptions, buildExecProcess, buildSpec, resolveUser, resourcesToOci } from './spec.ts';

const REPO = resolve(import.meta.dirname, '../..');
const RUNC = existsSync('/usr/sbin/runc') ? '/usr/sbin/runc' : 'runc';
const runcWorks = (() => {
  try {
    execFileSync(RUNC, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = process.getuid?.() !== 0 ? 'needs root' : !runcWorks ? 'needs runc' : false;

const host = readHostFacts();
const tag = Math.random().toString(36).slice(2, 8);
const CGROUP_PARENT = `/berth-test-${tag}`;
let base: string;
let rootfs: string;
let runc: Runc;

before(async () => {
  if (skip) return;
  base = await mkdtemp('/tmp/berth-runc-test-');
  rootfs = join(base, 'rootfs');
  await mkdir(rootfs);
  const tar = join(base, 'busybox.tar');
  execFileSync(join(REPO, 'scripts/busybox-rootfs'), ['amd64', tar], { stdio: 'ignore' });
  execFileSync('tar', ['-C', rootfs, '-xf', tar]);
  await mkdir(join(rootfs, 'mnt'), { recursive: true });
  runc = new Runc({ root: join(base, 'state'), binary: RUNC, tmpDir: join(base, 'tmp') });
});

after(async () => {
  if (skip) return;
  for (const s of await runc.list().catch(() => [])) await runc.delete(s.id, { force: true }).catch(() => {});
  removeCgroups(CGROUP_PARENT);
  await rm(base, { recursive: true, force: true });
});

/** Removes a cgroup directory and its children from every mounted hierarchy (rmdir only: control files cannot be unlinked). */
function removeCgroups(path: string) {
  const rmTree = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmTree(join(dir, e.name));
    try {
      rmdirSync(dir);
    } catch {
      // busy (a process still in it) or gone
    }
  };
  for (const h of readdirSync('/sys/fs/cgroup')) rmTree(join('/sys/fs/cgroup', h, path));
}

let seq = 0;
const newId = (name: string) => `bt-${tag}-${name}-${++seq}`;

async function bundleFor(id: string, opts: Partial<SpecOptions>): Promise<string> {
  const bundle = join(base, 'bundles', id);
  await mkdir(bundle, { recursive: true });
  const spec = buildSpec({ id, args: ['true'], rootfs, hostname: 'berth-test', cgroupsPath: `${CGROUP_PARENT}/${id}`, host, ...opts });
  await writeFile(join(bundle, 'config.json'), encodeSpec(spec, 2));
  return bundle;
}

/** Runs `script` under `sh -c` in a fresh container to completion. */
async function runIn(name: string, script: string, opts: Partial<SpecOptions> = {}): Promise<RunResult> {
  const id = newId(name);
  return runc.run(id, await bundleFor(id, { args: ['sh', '-c', script], ...opts }));
}

const capEff = (status: string) => decodeCapMask(/^CapEff:\s*(\w+)/m.exec(status)?.[1] ?? '0');
const field = (status: string, name: string) => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(status)?.[1];

async function waitStatus(id: string, want: string) {
  for (let i = 0; i < 100; i++) {
    if ((await runc.state(id)).status === want) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`container ${id} never became ${want}`);
}

test('hostname is the container’s own', { skip }, async () => {
  const r = await runIn('uts', 'hostname; echo "$HOSTNAME"');
  assert.equal(r.exitCode, 0, r.stderr);
  const [h, env] = r.stdout.split('\n');
  assert.equal(h, 'berth-test');
  assert.notEqual(hostHostname(), 'berth-test');
  assert.equal(env, 'berth-test');
});

test('ps sees only the container: PID 1 is the command', { skip }, async () => {
  const id = newId('pid');
  const r = await runc.run(id, await bundleFor(id, { args: ['ps', '-o', 'pid,args'] }));
  assert.equal(r.exitCode, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').slice(1).map((l) => l.trim());
  assert.deepEqual(rows, ['1 ps -o pid,args']);
});

test('default capabilities, seccomp on, no-new-privileges when asked', { skip }, async () => {
  const r = await runIn('caps', 'cat /proc/1/status');
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(new Set(capEff(r.stdout)), new Set(DEFAULT_CAPABILITIES));
  assert.equal(field(r.stdout, 'Seccomp'), '2');
  assert.equal(field(r.stdout, 'NoNewPrivs'), '0');
  const n = await runIn('nnp', 'cat /proc/1/status', { noNewPrivileges: true, capAdd: ['NET_ADMIN'], capDrop: ['CHOWN'] });
  assert.equal(field(n.stdout, 'NoNewPrivs'), '1');
  assert.equal(field(n.stdout, 'Seccomp'), '2');
  const caps = capEff(n.stdout);
  assert.ok(caps.includes('CAP_NET_ADMIN') && !caps.includes('CAP_CHOWN'));
});

test('seccomp denies what the profile leaves out; unconfined does not filter', { skip }, async () => {
  // Without CAP_SYS_ADMIN, mount is refused (by the profile and the missing capability).
  const r = await runIn('mount', 'mount -t tmpfs none /mnt && echo mounted');
  assert.notEqual(r.exitCode, 0);
  const u = await runIn('unconfined', 'grep Seccomp: /proc/1/status', { seccomp: 'unconfined' });
  assert.match(u.stdout, /Seccomp:\s+0/);
});

test('masked and read-only paths', { skip }, async () => {
  const r = await runIn(
    'masked',
    [
      'echo keys=$(cat /proc/keys | wc -c)',
      'echo interrupts=$(cat /proc/interrupts | wc -c)',
      'echo kcore=$(cat /proc/kcore 2>/dev/null | wc -c)',
      'echo firmware=$(ls -A /sys/firmware | wc -l)',
      'touch /sys/firmware/x 2>/dev/null && echo firmware-writable',
      'echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo procsys-writable',
      'echo 1 > /proc/sysrq-trigger 2>/dev/null && echo sysrq-writable',
      'true',
    ].join('; '),
  );
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /keys=0\n/);
  assert.match(r.stdout, /interrupts=0\n/);
  assert.match(r.stdout, /kcore=0\n/);
  assert.match(r.stdout, /firmware=0\n/);
  assert.doesNotMatch(r.stdout, /writable/);
  if (existsSync('/proc/interrupts')) assert.ok(readFileSync('/proc/interrupts').length > 0, 'the host’s is not empty');
});

test('a read-only rootfs refuses writes; a tmpfs on /tmp takes them', { skip }, async () => {
  const r = await runIn('ro', 'touch /x 2>/dev/null && echo root-writable; touch /tmp/y && echo tmp-ok; grep " /tmp " /proc/mounts', {
    readonlyRootfs: true,
    mounts: [{ type: 'tmpfs', destination: '/tmp', options: ['size=16m'] }],
  });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /root-writable/);
  assert.match(r.stdout, /tmp-ok/);
  assert.match(r.stdout, /tmpfs \/tmp tmpfs rw,nosuid,nodev,noexec,relatime,size=16384k/);
});

test('memory and pids limits land in the cgroup v1 files', { skip }, async () => {
  const r = await runIn('limits', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us', {
    resources: { memory: 64 * 1024 * 1024, pidsLimit: 42, nanoCpus: 0.5e9 },
  });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), ['67108864', '42', '50000']);
});

test('ulimits are clamped to the host’s hard limit', { skip }, async () => {
  const hard = host.rlimits.RLIMIT_NOFILE.hard;
  const want = rlimitLess(hard, 50000) ? String(hard) : '50000';
  const r = await runIn('nofile', 'ulimit -n; ulimit -Hn', { ulimits: [{ name: 'nofile', soft: 50000, hard: 50000 }] });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [want, want]);
  const low = await runIn('nofile-low', 'ulimit -n; ulimit -Hn', { ulimits: [{ name: 'nofile', soft: 1000, hard: 2000 }] });
  assert.deepEqual(low.stdout.trim().split('\n'), ['1000', '2000']);
});

test('a privileged container runs with every host capability and no filter', { skip }, async () => {
  const r = await runIn('priv', 'cat /proc/1/status; mount -t tmpfs none /mnt && echo mounted; umount /mnt', { privileged: true });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.deepEqual(capEff(r.stdout), [...host.capabilities]);
  if (!host.capabilities.includes('CAP_SYS_RESOURCE')) assert.ok(!capEff(r.stdout).includes('CAP_SYS_RESOURCE'));
  assert.equal(field(r.stdout, 'Seccomp'), '0');
  assert.match(r.stdout, /mounted/);
});

test('users resolve from the image and lose their effective capabilities', { skip }, async () => {
  const user = await resolveUser(rootfs, 'daemon');
  const r = await runIn('user', 'id; grep CapEff /proc/self/status', { user });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /^uid=1\(daemon\) gid=1\(daemon\)/);
  assert.match(r.stdout, /CapEff:\s+0+\n/);
});

test('etc files, /.dockerenv, init and the network namespace', { skip }, async () => {
  const files = join(base, 'files');
  await mkdir(files, { recursive: true });
  await writeFile(join(files, 'hosts'), '127.0.0.1\tlocalhost\n10.1.2.3\tberth-test\n');
  await writeFile(join(files, 'hostname'), 'berth-test\n');
  await writeFile(join(files, 'resolv.conf'), 'nameserver 10.1.2.1\n');
  await writeFile(join(files, 'dockerenv'), '');
  const init = existsSync('/usr/bin/tini-static') ? '/usr/bin/tini-static' : undefined;
  const r = await runIn(
    'files',
    'cat /etc/hosts /etc/hostname /etc/resolv.conf; test -f /.dockerenv && echo dockerenv; tr "\\0" " " < /proc/1/cmdline; echo; ip -o link | cut -d: -f2; cat /proc/sys/net/ipv4/ip_unprivileged_port_start',
    {
      etcHosts: join(files, 'hosts'),
      etcHostname: join(files, 'hostname'),
      resolvConf: join(files, 'resolv.conf'),
      dockerenv: join(files, 'dockerenv'),
      init,
    },
  );
  assert.equal(r.exitCode, 0, r.stderr);
  assert.match(r.stdout, /10\.1\.2\.3\tberth-test\nberth-test\nnameserver 10\.1\.2\.1\ndockerenv\n/);
  if (init) assert.match(r.stdout, /^\/sbin\/docker-init -- sh -c /m);
  assert.match(r.stdout, /\n lo\n0\n$/, 'only loopback; low ports open to all');
});

test('lifecycle: create, start, state, update, exec, ps, pause, resume, kill, delete', { skip }, async () => {
  const id = newId('life');
  const bundle = await bundleFor(id, { args: ['sleep', '1000'], resources: { memory: 64 << 20, pidsLimit: 50 } });
  const cg = (c: string, f: string) => readFileSync(join('/sys/fs/cgroup', c, CGROUP_PARENT, id, f), 'utf8').trim();
  await runc.create(id, bundle, { pidFile: join(bundle, 'pid') });
  await assert.rejects(runc.create(id, bundle), (e) => isBerthError(e, 'AlreadyExists') && /already exists/.test(e.message));
  const created = await runc.state(id);
  assert.equal(created.status, 'created');
  assert.equal(Number(readFileSync(join(bundle, 'pid'), 'utf8')), created.pid);
  await runc.start(id);
  await waitStatus(id, 'running');
  assert.ok((await runc.list()).some((s) => s.id === id && s.status === 'running'));

  // The host side of the cgroup, while it runs.
  assert.equal(cg('memory', 'memory.limit_in_bytes'), String(64 << 20));
  assert.equal(cg('memory', 'memory.memsw.limit_in_bytes'), String(128 << 20), 'swap defaults to twice the memory');
  assert.equal(cg('pids', 'pids.max'), '50');

  // runc update: memory must move with swap (v1 wants memory ≤ memsw).
  await assert.rejects(runc.update(id, resourcesToOci({ memory: 256 << 20 })), (e) => isBerthError(e, 'Internal') && /invalid argument/.test(e.message));
  await runc.update(id, resourcesToOci({ memory: 256 << 20, memorySwap: 512 << 20, pidsLimit: 100, cpuShares: 512, nanoCpus: 1e9 }));
  assert.equal(cg('memory', 'memory.limit_in_bytes'), String(256 << 20));
  assert.equal(cg('memory', 'memory.memsw.limit_in_bytes'), String(512 << 20));
  assert.equal(cg('pids', 'pids.max'), '100');
  assert.equal(cg('cpu', 'cpu.shares'), '512');
  assert.equal(cg('cpu', 'cpu.cfs_quota_us'), '100000');
  await runc.update(id, resourcesToOci({ pidsLimit: -1 }));
  assert.equal(cg('pids', 'pids.max'), 'max');

  // exec in the foreground: the process's own exit code and output.
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8'));
  const fg = await runc.exec(id, buildExecProcess(spec, { args: ['sh', '-c', 'echo hi; id -u; echo oops >&2; exit 3'], user: { uid: 1, gid: 1, additionalGids: [] } }));
  assert.deepEqual(fg, { exitCode: 3, stdout: 'hi\n1\n', stderr: 'oops\n' });
  const input = await runc.exec(id, buildExecProcess(spec, { args: ['cat'] }), { input: 'piped\n' });
  assert.equal(input.stdout, 'piped\n');
  await assert.rejects(runc.exec(id, buildExecProcess(spec, { args: ['/nonexistent'] })), (e) => isBerthError(e) && /nonexistent/.test(e.message));
  await runc.exec(id, buildExecProcess(spec, { args: ['sleep', '500'] }), { detach: true, pidFile: join(bundle, 'exec.pid') });
  const pids = await runc.ps(id);
  assert.equal(pids.length, 2);
  assert.ok(pids.includes(Number(readFileSync(join(bundle, 'exec.pid'), 'utf8'))));

  await runc.pause(id);
  assert.equal((await runc.state(id)).status, 'paused');
  await assert.rejects(runc.exec(id, buildExecProcess(spec, { args: ['true'] })), (e) => isBerthError(e, 'FailedPrecondition'));
  await runc.resume(id);
  assert.equal((await runc.state(id)).status, 'running');
  const stats = await runc.stats(id);
  assert.ok('memory' in stats && 'pids' in stats);

  await assert.rejects(runc.delete(id), (e) => isBerthError(e, 'FailedPrecondition'));
  await runc.kill(id, 'SIGKILL');
  await waitStatus(id, 'stopped');
  await runc.delete(id);
  await assert.rejects(runc.state(id), (e) => isBerthError(e, 'NotFound') && /does not exist/.test(e.message));
  await assert.rejects(runc.kill(id, 'KILL'), (e) => isBerthError(e, 'NotFound'));
  await assert.rejects(runc.exec(id, buildExecProcess(spec, { args: ['true'] })), (e) => isBerthError(e, 'NotFound'));
  assert.ok(!existsSync(join('/sys/fs/cgroup/memory', CGROUP_PARENT, id)), 'runc delete removes the container’s cgroup');
});

test('delete --force stops a running container', { skip }, async () => {
  const id = newId('force');
  await runc.runDetached(id, await bundleFor(id, { args: ['sleep', '1000'] }));
  assert.equal((await runc.state(id)).status, 'running');
  await runc.delete(id, { force: true });
  await assert.rejects(runc.state(id), (e) => isBerthError(e, 'NotFound'));
});

test('runc’s own failures are errors with its message, not exit codes', { skip }, async () => {
  const id = newId('bad');
  const bundle = await bundleFor(id, { args: ['/no/such/binary'] });
  await assert.rejects(runc.run(id, bundle), (e) => isBerthError(e) && /no such file or directory/.test(e.message));
  const id2 = newId('bad-create');
  await assert.rejects(runc.create(id2, join(base, 'no-bundle')), (e) => isBerthError(e) && /no-bundle: no such file/.test(e.message));
  // A container's own failure is just its exit code.
  const r = await runIn('exit', 'echo out; echo err >&2; exit 7');
  assert.deepEqual(r, { exitCode: 7, stdout: 'out\n', stderr: 'err\n' });
});
