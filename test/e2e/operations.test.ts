import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { BERTH, DOCKER, TestDaemon } from '../helpers/daemon.ts';

const CLIS = ['berth', 'docker'] as const;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MiB = 1024 * 1024;

/** A cgroup v1 file of a container (v2: the unified tree). */
function cgroupFile(controller: string, id: string, file: string): string {
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  return v2 ? `/sys/fs/cgroup/berth/${id}/${file}` : `/sys/fs/cgroup/${controller}/berth/${id}/${file}`;
}
const readCg = (controller: string, id: string, file: string) => readFileSync(cgroupFile(controller, id, file), 'utf8').trim();

/** GET over the daemon's socket; the body split into its JSON documents (stats streams one per line). */
function apiGet(socket: string, path: string, maxDocs = Infinity): Promise<{ status: number; docs: any[] }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', agent: false }, (res) => {
      let buf = '';
      const docs: any[] = [];
      res.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line) docs.push(JSON.parse(line));
          if (docs.length >= maxDocs) {
            req.destroy();
            resolve({ status: res.statusCode ?? 0, docs });
          }
        }
      });
      res.on('end', () => {
        if (buf.trim()) docs.push(JSON.parse(buf));
        resolve({ status: res.statusCode ?? 0, docs });
      });
    });
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    req.end();
  });
}

/** A JSON request over the daemon's socket. */
function apiJson(socket: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method, agent: false, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let buf = '';
      res.on('data', (c: Buffer) => (buf += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: buf ? JSON.parse(buf) : undefined }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('container operations: top, stats, update, pause, health, init, limits, restart policies', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.startWithBusybox();
  });
  after(() => d.cleanup());
  const cli = (which: (typeof CLIS)[number], args: string[]) => (which === 'berth' ? d.berth(args) : d.docker(args));
  const inspect = (name: string, format: string) => d.berth(['inspect', '--format', format, name]).stdout.trim();
  const idOf = (name: string) => inspect(name, '{{.Id}}');

  test('ps -s and system df show the writable layer\'s size; inspect finds volumes and networks; ExecIDs lists live execs', () => {
    d.berth(['volume', 'create', 'sized']);
    const run = d.berth(['run', '-d', '--name', 'sized', '-v', 'sized:/data', 'busybox', 'sh', '-c',
      'dd if=/dev/zero of=/big bs=1024 count=500 2>/dev/null && dd if=/dev/zero of=/data/v bs=1024 count=100 2>/dev/null && sleep 300']);
    assert.equal(run.code, 0, run.stderr);
    let sizes = '';
    for (let i = 0; i < 50 && !/^5\d\dkB/.test(sizes); i++) {
      spawnSync('sleep', ['0.1']);
      sizes = d.berth(['ps', '-s', '--filter', 'name=sized', '--format', '{{.Size}}']).stdout.trim();
    }
    for (const c of CLIS) {
      const r = cli(c, ['ps', '-s', '--filter', 'name=sized', '--format', '{{.Size}}']);
      assert.match(r.stdout.trim(), /^5\d\dkB \(virtual \d[\d.]*MB\)$/, r.stdout);
      const table = cli(c, ['ps', '-s', '--filter', 'name=sized']);
      assert.match(table.stdout.split('\n')[0], /NAMES\s+SIZE$/, table.stdout);
      const df = cli(c, ['system', 'df', '--format', '{{.Type}}:{{.TotalCount}}:{{.Active}}:{{.Size}}']);
      assert.equal(df.code, 0, df.stderr);
      assert.match(df.stdout, /^Containers:1:1:5\d\dkB$/m, df.stdout);
      assert.match(df.stdout, /^Local Volumes:1:1:102(\.4)?kB$/m, df.stdout);
      assert.equal(cli(c, ['inspect', '-f', '{{.Name}} {{.Driver}}', 'sized']).stdout.trim().split('\n')[0], '/sized overlayfs');
      assert.equal(cli(c, ['inspect', '--type', 'volume', '-f', '{{.Name}} {{.Driver}}', 'sized']).stdout.trim(), 'sized local');
      assert.equal(cli(c, ['inspect', '-f', '{{.Name}} {{.Driver}}', 'bridge']).stdout.trim(), 'bridge bridge');
    }
    assert.equal(inspect('sized', '{{json .ExecIDs}}'), 'null');
    assert.equal(d.berth(['exec', '-d', 'sized', 'sleep', '30']).code, 0);
    const ids = JSON.parse(inspect('sized', '{{json .ExecIDs}}')) as string[];
    assert.equal(ids.length, 1);
    assert.match(ids[0], /^[0-9a-f]{64}$/);
    d.berth(['rm', '-f', 'sized']);
    d.berth(['volume', 'rm', 'sized']);
  });

  test('top lists the container\'s processes with ps columns, and refuses a stopped container', () => {
    d.berth(['run', '-d', '--name', 'topper', 'busybox', 'sh', '-c', 'sleep 300 & exec sleep 301']);
    for (const c of CLIS) {
      const r = cli(c, ['top', 'topper']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.match(lines[0], /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
      assert.equal(lines.length, 3, r.stdout);
      assert.ok(lines.some((l) => / sleep 301$/.test(l)) && lines.some((l) => / sleep 300$/.test(l)), r.stdout);
      const custom = cli(c, ['top', 'topper', '-o', 'pid,comm']);
      assert.equal(custom.code, 0, custom.stderr);
      assert.match(custom.stdout, /^PID\s+COMMAND\n\d+\s+sleep\n\d+\s+sleep\n$/);
    }
    const pid = inspect('topper', '{{.State.Pid}}');
    assert.match(d.berth(['top', 'topper', '-o', 'pid']).stdout, new RegExp(`^\\s*${pid}$`, 'm'), 'State.Pid is among them');
    d.berth(['kill', 'topper']);
    d.berth(['wait', 'topper']);
    const stopped = d.docker(['top', 'topper']);
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.stderr, /is not running/);
    d.berth(['rm', 'topper']);
  });

  test('stats: Docker\'s JSON from the cgroup, --no-stream tables through both CLIs, and a stream of samples', async () => {
    const id = d.berth(['run', '-d', '--name', 'busy', '-m', '48m', '--pids-limit', '20', 'busybox', 'sh', '-c', 'while true; do :; done']).stdout.trim();
    await sleep(300);
    const one = await apiGet(d.socket, '/containers/busy/stats?stream=false');
    assert.equal(one.status, 200);
    assert.equal(one.docs.length, 1);
    const s = one.docs[0];
    assert.equal(s.id, id);
    assert.equal(s.name, '/busy');
    assert.ok(Date.parse(s.read) > 0 && Date.parse(s.preread) > 0);
    assert.ok(s.cpu_stats.cpu_usage.total_usage > s.precpu_stats.cpu_usage.total_usage, 'CPU time grows between the samples');
    assert.ok(s.cpu_stats.system_cpu_usage > s.precpu_stats.system_cpu_usage);
    assert.ok(s.cpu_stats.online_cpus >= 1);
    assert.equal(s.memory_stats.limit, 48 * MiB);
    assert.ok(s.memory_stats.usage > 0 && typeof s.memory_stats.stats === 'object');
    assert.deepEqual(s.pids_stats, { current: 1, limit: 20 });
    assert.ok('blkio_stats' in s);

    for (const c of CLIS) {
      const r = cli(c, ['stats', '--no-stream', 'busy']);
      assert.equal(r.code, 0, r.stderr);
      const [head, row] = r.stdout.trim().split('\n');
      assert.match(head, /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/);
      const m = /^([0-9a-f]{12})\s+busy\s+([\d.]+)%\s+[\d.]+[KMG]?i?B \/ 48MiB\s+[\d.]+%\s+0B \/ 0B\s+\S+ \/ \S+\s+1$/.exec(row);
      assert.ok(m, row);
      assert.equal(m[1], id.slice(0, 12));
      assert.ok(Number(m[2]) > 0.5, `a busy loop uses CPU: ${m[2]}%`);
      const f = cli(c, ['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}} {{.MemUsage}}', 'busy']);
      assert.match(f.stdout, /^busy 1 [\d.]+[KMG]?i?B \/ 48MiB\n$/);
    }

    // The live view redraws a table each second until interrupted (docker ignores SIGTERM here, so SIGKILL).
    for (const [c, bin] of [['berth', BERTH], ['docker', DOCKER]] as const) {
      const live = spawnSync(bin, ['stats', 'busy'], { env: { ...process.env, ...d.env, DOCKER_CONFIG: `${d.dir}/docker-config` }, encoding: 'utf8', timeout: 3000, killSignal: 'SIGKILL' });
      const frames = live.stdout.split('CONTAINER ID').slice(1);
      assert.ok(frames.length >= 2, `${c}: several frames: ${live.stdout}`);
      assert.match(frames.at(-1)!, new RegExp(`${id.slice(0, 12)}\\s+busy\\s+[\\d.]+%\\s+[\\d.]+[KMG]?i?B / 48MiB`), `${c}: ${frames.at(-1)}`);
    }

    // Without names, containers that start later join the live table.
    const all = spawn(BERTH, ['stats'], { env: { ...process.env, ...d.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    all.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
    await sleep(1200);
    d.berth(['run', '-d', '--name', 'late', 'busybox', 'sleep', '300']);
    await until('the late container in the table', () => /\blate\b/.test(out.split('CONTAINER ID').at(-1) ?? ''));
    all.kill('SIGKILL');
    assert.match(out.split('CONTAINER ID').at(-1)!, /\bbusy\b/);
    d.berth(['rm', '-f', 'late']);

    const streamed = await apiGet(d.socket, '/containers/busy/stats', 2);
    assert.equal(streamed.docs.length, 2);
    assert.deepEqual(streamed.docs[1].precpu_stats, streamed.docs[0].cpu_stats, 'each sample carries the previous one');
    assert.equal(streamed.docs[1].preread, streamed.docs[0].read);
    assert.equal((await apiGet(d.socket, '/containers/nonesuch/stats?stream=false')).status, 404);
    d.berth(['rm', '-f', 'busy']);
  });

  test('update changes a running container\'s limits through runc and keeps them in HostConfig', () => {
    for (const c of CLIS) {
      const name = `upd-${c}`;
      d.berth(['run', '-d', '--name', name, '-m', '32m', '--pids-limit', '10', 'busybox', 'sleep', '300']);
      const id = idOf(name);
      const r = cli(c, ['update', '-m', '64m', '--memory-swap', '128m', '--cpus', '0.5', '--cpu-shares', '256', '--pids-limit', '100', '--restart', 'on-failure:3', name]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), name);
      assert.equal(readCg('memory', id, 'memory.limit_in_bytes'), String(64 * MiB));
      assert.equal(readCg('pids', id, 'pids.max'), '100');
      assert.equal(readCg('cpu', id, 'cpu.cfs_quota_us'), '50000');
      assert.equal(readCg('cpu', id, 'cpu.shares'), '256');
      assert.equal(inspect(name, '{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}'),
        `${64 * MiB} ${128 * MiB} 500000000 256 100 on-failure 3`);
      const low = cli(c, ['update', '-m', '1m', name]);
      assert.notEqual(low.code, 0);
      assert.match(low.stderr, /Minimum memory limit allowed is 6MB/);
      assert.equal(readCg('memory', id, 'memory.limit_in_bytes'), String(64 * MiB), 'a refused update changes nothing');
    }
    const quota = d.docker(['update', '--cpu-quota', '20000', 'upd-docker']);
    assert.notEqual(quota.code, 0);
    assert.match(quota.stderr, /Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set/);
    assert.equal(d.berth(['update', '--pids-limit', '-1', 'upd-berth']).code, 0);
    assert.equal(readCg('pids', idOf('upd-berth'), 'pids.max'), 'max');
    // A stopped container's update is kept and applies at its next start.
    d.berth(['stop', '-t', '0', 'upd-docker']);
    assert.equal(d.docker(['update', '--pids-limit', '42', 'upd-docker']).code, 0);
    d.berth(['start', 'upd-docker']);
    assert.equal(readCg('pids', idOf('upd-docker'), 'pids.max'), '42');
    d.berth(['rm', '-f', 'upd-berth', 'upd-docker']);
  });

  test('pause freezes every process of the container and unpause thaws them', async () => {
    d.berth(['run', '-d', '--name', 'frozen', 'busybox', 'sh', '-c', 'sleep 300 & while true; do sleep 0.1; done']);
    const id = idOf('frozen');
    for (const c of CLIS) {
      assert.equal(cli(c, ['pause', 'frozen']).code, 0);
      assert.equal(readCg('freezer', id, 'freezer.state'), 'FROZEN');
      assert.match(cli(c, ['ps', '--filter', 'name=frozen', '--format', '{{.Status}}']).stdout, /^Up .* \(Paused\)\n$/);
      assert.equal(inspect('frozen', '{{.State.Status}} {{.State.Paused}}'), 'paused true');
      // Every process of the cgroup is stopped by the freezer.
      const pids = readCg('freezer', id, 'cgroup.procs').split('\n');
      assert.ok(pids.length >= 2);
      for (const p of pids) assert.match(readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1], /^[DS] /);
      const again = cli(c, ['pause', 'frozen']);
      assert.notEqual(again.code, 0);
      assert.match(again.stderr, /is already paused/);
      assert.equal(cli(c, ['unpause', 'frozen']).code, 0);
      assert.equal(readCg('freezer', id, 'freezer.state'), 'THAWED');
      assert.equal(inspect('frozen', '{{.State.Status}}'), 'running');
    }
    d.berth(['pause', 'frozen']);
    assert.equal(d.berth(['stop', '-t', '0', 'frozen']).code, 0, 'a paused container can be stopped');
    // Health checks pause with the container and resume with it.
    d.berth(['run', '-d', '--name', 'frozen-doc', '--health-cmd', 'true', '--health-interval', '100ms', 'busybox', 'sleep', '300']);
    await until('healthy', () => inspect('frozen-doc', '{{.State.Health.Status}}') === 'healthy');
    d.berth(['pause', 'frozen-doc']);
    await sleep(300);
    const during = inspect('frozen-doc', '{{json .State.Health.Log}}');
    await sleep(500);
    assert.equal(inspect('frozen-doc', '{{json .State.Health.Log}}'), during, 'no checks while paused');
    d.berth(['unpause', 'frozen-doc']);
    await until('a check after unpause', () => inspect('frozen-doc', '{{json .State.Health.Log}}') !== during);
    assert.equal(inspect('frozen-doc', '{{.State.Health.Status}}'), 'healthy');
    d.berth(['rm', '-f', 'frozen-doc']);
    assert.equal(inspect('frozen', '{{.State.Status}}'), 'exited');
    d.berth(['rm', 'frozen']);
  });

  test('health checks: starting, healthy, unhealthy with a log of five, ps status and filter, events, and no checks after stop', async () => {
    const since = (Date.now() / 1000).toFixed(3);
    d.berth(['run', '-d', '--name', 'doc', '--health-cmd', 'test -f /tmp/ok && echo fine', '--health-interval', '200ms', '--health-retries', '2',
      'busybox', 'sh', '-c', 'touch /tmp/ok; sleep 1.5; rm /tmp/ok; sleep 300']);
    assert.match(d.berth(['ps', '--format', '{{.Status}}', '--filter', 'name=doc']).stdout, /\(health: starting\)/);
    await until('healthy', () => inspect('doc', '{{.State.Health.Status}}') === 'healthy');
    for (const c of CLIS) {
      assert.match(cli(c, ['ps', '--format', '{{.Names}} {{.Status}}', '--filter', 'health=healthy']).stdout, /^doc Up .* \(healthy\)\n$/);
      assert.equal(cli(c, ['ps', '-q', '--filter', 'health=unhealthy']).stdout, '');
    }
    const healthy = JSON.parse(inspect('doc', '{{json .State.Health}}'));
    assert.equal(healthy.FailingStreak, 0);
    assert.equal(healthy.Log.at(-1).ExitCode, 0);
    assert.equal(healthy.Log.at(-1).Output, 'fine\n');
    await until('unhealthy', () => inspect('doc', '{{.State.Health.Status}}') === 'unhealthy');
    for (const c of CLIS) assert.match(cli(c, ['ps', '--format', '{{.Names}} {{.Status}}', '--filter', 'health=unhealthy']).stdout, /^doc Up .* \(unhealthy\)\n$/);
    await sleep(1200);
    const sick = JSON.parse(inspect('doc', '{{json .State.Health}}'));
    assert.equal(sick.Log.length, 5, 'the last five results are kept');
    assert.ok(sick.FailingStreak >= 5);
    assert.ok(sick.Log.every((l: { ExitCode: number }) => l.ExitCode === 1));
    const events = d.docker(['events', '--since', since, '--until', (Date.now() / 1000).toFixed(3), '--filter', 'container=doc', '--format', '{{.Action}}']).stdout;
    assert.match(events, /health_status: healthy\nhealth_status: unhealthy\n/);
    d.berth(['stop', '-t', '0', 'doc']);
    const before = inspect('doc', '{{json .State.Health.Log}}');
    await sleep(700);
    assert.equal(inspect('doc', '{{json .State.Health.Log}}'), before, 'no checks run once the container stopped');
    d.berth(['rm', 'doc']);
  });

  test('a health check that outlives its timeout fails; --no-healthcheck and NONE disable checks', async () => {
    d.docker(['run', '-d', '--name', 'slowdoc', '--health-cmd', 'sleep 5', '--health-interval', '200ms', '--health-timeout', '300ms', '--health-retries', '1', 'busybox', 'sleep', '300']);
    await until('unhealthy', () => inspect('slowdoc', '{{.State.Health.Status}}') === 'unhealthy');
    const h = JSON.parse(inspect('slowdoc', '{{json .State.Health}}'));
    assert.equal(h.Log[0].ExitCode, -1);
    assert.match(h.Log[0].Output, /Health check exceeded timeout \(300ms\)/);
    // The exec form (CMD) runs without a shell; as an API client would send it.
    const created = await apiJson(d.socket, 'POST', '/v1.44/containers/create?name=execdoc', {
      Image: 'busybox', Cmd: ['sleep', '300'], Healthcheck: { Test: ['CMD', 'cat', '/etc/hostname'], Interval: 200e6, Timeout: 1e9, Retries: 1 },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal((await apiJson(d.socket, 'POST', '/v1.44/containers/execdoc/start')).status, 204);
    await until('healthy', () => inspect('execdoc', '{{.State.Health.Status}}') === 'healthy');
    assert.equal(JSON.parse(inspect('execdoc', '{{json .State.Health.Log}}'))[0].Output, `${created.body.Id.slice(0, 12)}\n`);
    d.berth(['run', '-d', '--name', 'nodoc', '--no-healthcheck', 'busybox', 'sleep', '300']);
    await sleep(300);
    assert.equal(JSON.parse(inspect('nodoc', '{{json .State}}')).Health, undefined);
    assert.match(d.berth(['ps', '--filter', 'name=nodoc', '--format', '{{.Status}}']).stdout, /^Up [^(]*$/m);
    assert.match(d.berth(['ps', '-q', '--filter', 'health=none']).stdout, /\w/);
    d.berth(['rm', '-f', 'slowdoc', 'nodoc', 'execdoc']);
  });

  test('--init: PID 1 is docker-init and reaps orphans, which stay zombies without it', () => {
    const script = '(sleep 0.1 &); (sleep 0.6; ps -o pid,stat,comm) & exec sleep 1';
    for (const c of CLIS) {
      const withInit = cli(c, ['run', '--rm', '--init', 'busybox', 'sh', '-c', script]);
      assert.equal(withInit.code, 0, withInit.stderr);
      assert.match(withInit.stdout, /^\s+1 S\s+docker-init$/m);
      assert.doesNotMatch(withInit.stdout, / Z /, withInit.stdout);
      const without = cli(c, ['run', '--rm', 'busybox', 'sh', '-c', script]);
      assert.match(without.stdout, /^\s+1 S\s+sleep$/m);
      assert.match(without.stdout, /\d+ Z\s+sleep/, 'without an init the orphan stays a zombie');
    }
    d.berth(['run', '-d', '--init', '--name', 'inited', 'busybox', 'sleep', '300']);
    const top = d.berth(['top', 'inited', '-o', 'pid,args']).stdout;
    assert.match(top, /\/sbin\/docker-init -- sleep 300/);
    assert.equal(inspect('inited', '{{.HostConfig.Init}}'), 'true');
    d.berth(['rm', '-f', 'inited']);
  });

  test('a fork bomb under --pids-limit 64 is contained, the daemon stays responsive, and rm -f cleans it up', async () => {
    d.berth(['run', '-d', '--name', 'bomb', '--pids-limit', '64', 'busybox', 'sh', '-c', 'f(){ f|f & }; f; exec sleep 300']);
    const id = idOf('bomb');
    await until('the pids limit to bite', () => /max [1-9]/.test(readCg('pids', id, 'pids.events')), 20_000);
    for (let i = 0; i < 5; i++) {
      assert.ok(Number(readCg('pids', id, 'pids.current')) <= 64);
      await sleep(100);
    }
    const t0 = Date.now();
    assert.match(d.docker(['ps', '--filter', 'name=bomb', '--format', '{{.Names}} {{.State}}']).stdout, /^bomb running$/m);
    assert.equal(d.berth(['version', '--format', '{{.Server.Version}}']).code, 0);
    assert.ok(Date.now() - t0 < 5000, 'the daemon answers while the bomb runs');
    const r = d.berth(['rm', '-f', 'bomb']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(cgroupFile('pids', id, 'pids.current')), false, 'the cgroup is gone');
    assert.equal(d.berth(['ps', '-aq', '--filter', 'name=bomb']).stdout, '');
  });

  test('a memory hog under -m 32m is OOM-killed: exit 137, OOMKilled true and an oom event', () => {
    const since = (Date.now() / 1000).toFixed(3);
    for (const c of CLIS) {
      const r = cli(c, ['run', '--name', `hog-${c}`, '-m', '32m', 'busybox', 'sh', '-c', 'x=a; while true; do x=$x$x; done']);
      assert.equal(r.code, 137, r.stderr);
      assert.equal(inspect(`hog-${c}`, '{{.State.OOMKilled}} {{.State.ExitCode}} {{.State.Status}}'), 'true 137 exited');
      assert.match(cli(c, ['inspect', '--format', '{{json .State}}', `hog-${c}`]).stdout, /"OOMKilled":true/);
    }
    const events = d.berth(['events', '--since', since, '--until', (Date.now() / 1000).toFixed(3), '--filter', 'container=hog-berth', '--format', '{{.Action}}']).stdout;
    assert.match(events, /^oom\ndie$/m);
    // A SIGKILL from outside is 137 too, but no OOM.
    d.berth(['run', '-d', '--name', 'killed', '-m', '32m', 'busybox', 'sleep', '300']);
    d.berth(['kill', 'killed']);
    d.berth(['wait', 'killed']);
    assert.equal(inspect('killed', '{{.State.OOMKilled}} {{.State.ExitCode}}'), 'false 137');
    d.berth(['rm', '-f', 'hog-berth', 'hog-docker', 'killed']);
  });

  test('bad memory values get Docker\'s errors', () => {
    const existing = d.berth(['ps', '-aq']).stdout;
    for (const c of CLIS) {
      const bad = cli(c, ['run', '--rm', '-m', 'abc', 'busybox', 'true']);
      assert.equal(bad.code, 125);
      assert.match(bad.stderr, /invalid argument "abc" for "-m, --memory" flag: invalid size: 'abc'/);
      const small = cli(c, ['run', '--rm', '-m', '1m', 'busybox', 'true']);
      assert.equal(small.code, 125);
      assert.match(small.stderr, /Error response from daemon: Minimum memory limit allowed is 6MB/);
      const swap = cli(c, ['create', '-m', '64m', '--memory-swap', '32m', 'busybox', 'true']);
      assert.notEqual(swap.code, 0);
      assert.match(swap.stderr, /Minimum memoryswap limit should be larger than memory limit/);
    }
    assert.equal(d.berth(['ps', '-aq']).stdout, existing, 'nothing was created');
  });

  test('--restart on-failure:2 restarts twice, then stays exited with RestartCount 2', async () => {
    d.docker(['run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'sleep 0.2; exit 3']);
    await until('two restarts', () => inspect('flaky', '{{.RestartCount}} {{.State.Status}}') === '2 exited');
    await sleep(1000);
    assert.equal(inspect('flaky', '{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}'), '2 exited 3');
    for (const c of CLIS) assert.match(cli(c, ['ps', '-a', '--filter', 'name=flaky', '--format', '{{.Status}}']).stdout, /^Exited \(3\)/);
    // A clean exit is not a failure.
    d.berth(['run', '-d', '--name', 'fine', '--restart', 'on-failure', 'busybox', 'true']);
    await until('exit', () => inspect('fine', '{{.State.Status}}') === 'exited');
    await sleep(500);
    assert.equal(inspect('fine', '{{.RestartCount}} {{.State.Status}}'), '0 exited');
    d.berth(['rm', 'flaky', 'fine']);
  });

  test('restart policies across stop and a daemon kill -9: always, unless-stopped, health resumed', async () => {
    // always: restarts after its process exits, but not after `stop`.
    d.berth(['run', '-d', '--name', 'phoenix', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.3; exit 1']);
    await until('a restart', () => Number(inspect('phoenix', '{{.RestartCount}}')) >= 1);
    assert.equal(d.docker(['stop', '-t', '0', 'phoenix']).code, 0);
    await until('exited', () => inspect('phoenix', '{{.State.Status}}') === 'exited');
    const count = inspect('phoenix', '{{.RestartCount}}');
    await sleep(1000);
    assert.equal(inspect('phoenix', '{{.State.Status}} {{.RestartCount}}'), `exited ${count}`, 'stop prevents the restart');
    d.berth(['update', '--restart', 'always', 'phoenix']);
    // unless-stopped: a stopped one stays stopped; one whose process dies while the daemon is away comes back.
    d.berth(['run', '-d', '--name', 'stays', '--restart', 'unless-stopped', 'busybox', 'sleep', '300']);
    d.berth(['stop', '-t', '0', 'stays']);
    d.berth(['run', '-d', '--name', 'returns', '--restart', 'unless-stopped', 'busybox', 'sleep', '300']);
    d.berth(['run', '-d', '--name', 'plain', 'busybox', 'sleep', '300']);
    d.berth(['run', '-d', '--name', 'checked', '--health-cmd', 'true', '--health-interval', '200ms', 'busybox', 'sleep', '300']);
    await until('healthy', () => inspect('checked', '{{.State.Health.Status}}') === 'healthy');

    const pidOf = (name: string) => Number(inspect(name, '{{.State.Pid}}'));
    const victims = [pidOf('returns'), pidOf('plain')];
    assert.ok(victims.every((p) => p > 0));

    await d.kill9();
    for (const p of victims) process.kill(p, 'SIGKILL');
    await sleep(300);
    const restartedAt = Date.now();
    await d.startProcess();
    await until('always to come back', () => inspect('phoenix', '{{.State.Status}}') === 'running' || inspect('phoenix', '{{.RestartCount}}') > count);
    assert.equal(inspect('stays', '{{.State.Status}} {{.RestartCount}}'), 'exited 0', 'unless-stopped stays stopped');
    await until('unless-stopped to come back', () => inspect('returns', '{{.State.Status}} {{.RestartCount}}') === 'running 1');
    assert.equal(inspect('plain', '{{.State.Status}} {{.State.ExitCode}}'), 'exited 137', 'no policy: the exit is recorded');
    for (const c of CLIS) assert.match(cli(c, ['ps', '--filter', 'name=returns', '--format', '{{.Names}}']).stdout, /^returns$/m);
    // Health checks resume after the daemon restart.
    await until('a check after the restart', () => {
      const log = JSON.parse(inspect('checked', '{{json .State.Health.Log}}')) as { End: string }[];
      return log.some((l) => Date.parse(l.End) > restartedAt);
    });
    assert.equal(inspect('checked', '{{.State.Health.Status}}'), 'healthy');
    d.berth(['rm', '-f', 'phoenix', 'stays', 'returns', 'plain', 'checked']);
  });
});
