// `berth registry serve` against the reference registry (Debian's docker-registry, distribution
// 2.8) under the same load: wrk with 32 connections on a manifest GET, a small-blob (~1 KiB) GET
// and a 60 MB blob GET, the same content pushed to both. Reports requests/s, p99 latency,
// throughput, and each server's memory under load (VmRSS sampled while wrk runs, and VmHWM;
// summed over a server's processes).
//
// Usage: bin/node24 bench/registry-server.ts [--duration 10] [--workers N]
//   --workers: berth's worker processes (default: the registry's own default, one).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BERTH, fmt, main, onCleanup, procMemory, section, sleep, table, tempDir, timeSpawn, verdict } from './lib.ts';

const DISTRIBUTION = '/usr/bin/docker-registry';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const LARGE = 60 * 1000 * 1000;

const { values } = parseArgs({ options: { duration: { type: 'string', default: '10' }, workers: { type: 'string' } } });
const DURATION = Number(values.duration);

const sha256 = (b: Uint8Array | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface Server {
  name: string;
  url: string;
  proc: ChildProcess;
  /** Every process of the server (a primary and its workers). */
  pids(): number[];
  stop(): Promise<void>;
}

function childPids(pid: number): number[] {
  const out: number[] = [];
  const tasks = `/proc/${pid}/task`;
  if (!existsSync(tasks)) return out;
  try {
    for (const c of readFileSync(`${tasks}/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) out.push(Number(c), ...childPids(Number(c)));
  } catch { /* gone */ }
  return out;
}

function stopper(proc: ChildProcess): () => Promise<void> {
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  onCleanup(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL'); });
  return async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
}

async function waitReady(url: string, proc: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}: ${log()}`);
    try {
      if ((await fetch(`${url}/v2/`)).status === 200) return;
    } catch { /* not yet */ }
    await sleep(50);
  }
  throw new Error(`server at ${url} did not answer: ${log()}`);
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function startDistribution(dir: string): Promise<Server> {
  const port = await freePort();
  const config = join(dir, 'config.yml');
  // Debian's packaged configuration (with its in-memory blob descriptor cache), minus auth, on loopback, access log off.
  writeFileSync(config, `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: ${join(dir, 'root')}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:${port}
`);
  let log = '';
  const proc = spawn(DISTRIBUTION, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (c) => (log += c));
  proc.stderr!.on('data', (c) => (log += c));
  const url = `http://127.0.0.1:${port}`;
  const stop = stopper(proc);
  await waitReady(url, proc, () => log);
  return { name: 'distribution', url, proc, pids: () => [proc.pid!], stop };
}

async function startBerth(dir: string): Promise<Server> {
  const args = ['registry', 'serve', '--listen', '127.0.0.1:0', '--root', join(dir, 'root')];
  if (values.workers) args.push('--workers', values.workers);
  const proc = spawn(BERTH, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr!.on('data', (c) => (log += c));
  const stop = stopper(proc);
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (c) => {
      out += c;
      const m = /listening on (\S+)\n/.exec(out);
      if (m) resolve(m[1]);
    });
    proc.once('exit', (code) => reject(new Error(`berth registry exited with ${code}: ${log}`)));
  });
  await waitReady(url, proc, () => log);
  // bin/berth execs node, so the child's pid is the registry's own.
  return { name: 'berth', url, proc, pids: () => [proc.pid!, ...childPids(proc.pid!)], stop };
}

async function push(server: Server, repo: string, blobs: Buffer[], manifest: Buffer): Promise<void> {
  for (const b of blobs) {
    const post = await fetch(`${server.url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
    if (post.status !== 202) throw new Error(`${server.name}: POST upload: ${post.status}`);
    const loc = new URL(post.headers.get('location')!, server.url);
    loc.searchParams.set('digest', sha256(b));
    const put = await fetch(loc, { method: 'PUT', body: new Blob([b as Uint8Array<ArrayBuffer>]), headers: { 'Content-Type': 'application/octet-stream' } });
    if (put.status !== 201) throw new Error(`${server.name}: PUT upload: ${put.status} ${await put.text()}`);
  }
  const res = await fetch(`${server.url}/v2/${repo}/manifests/latest`, { method: 'PUT', body: new Blob([manifest as Uint8Array<ArrayBuffer>]), headers: { 'Content-Type': OCI_MANIFEST } });
  if (res.status !== 201) throw new Error(`${server.name}: PUT manifest: ${res.status} ${await res.text()}`);
}

interface WrkResult {
  rps: number;
  p99ms: number;
  bytesPerSec: number;
  rssMiB: number;
  hwmMiB: number;
  errors: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const UNIT_B: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

async function wrk(server: Server, path: string, headers: string[] = []): Promise<WrkResult> {
  // One short warm-up, so both servers have their caches and code paths hot.
  await timeSpawn('wrk', ['-c', '32', '-t', '2', '-d', '2s', ...headers.flatMap((h) => ['-H', h]), `${server.url}${path}`]);
  let rss = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      let sum = 0;
      for (const pid of server.pids()) {
        try { sum += procMemory(pid).rss; } catch { /* exited */ }
      }
      rss = Math.max(rss, sum);
      await sleep(100);
    }
  })();
  const r = await timeSpawn('wrk', ['-c', '32', '-t', '2', '-d', `${DURATION}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), `${server.url}${path}`]);
  sampling = false;
  await sampler;
  if (r.code !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const out = r.stdout;
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s|m)\s*$/m.exec(out);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(out);
  const tps = /^Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB|TB)/m.exec(out);
  if (!p99 || !rps || !tps) throw new Error(`cannot read wrk's output:\n${out}`);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: (.*)/.exec(out);
  let hwm = 0;
  for (const pid of server.pids()) {
    try { hwm += procMemory(pid).hwm; } catch { /* exited */ }
  }
  return {
    rps: Number(rps[1]),
    p99ms: Number(p99[1]) * UNIT_MS[p99[2]],
    bytesPerSec: Number(tps[1]) * UNIT_B[tps[2]],
    rssMiB: rss,
    hwmMiB: hwm,
    errors: [non2xx ? `${non2xx[1]} non-2xx` : '', sockErr ? `socket errors: ${sockErr[1]}` : ''].filter(Boolean).join('; '),
  };
}

await main(async () => {
  section(`registry servers under wrk -c 32 -t 2 -d ${DURATION}s --latency (berth workers: ${values.workers ?? 'default'})`);
  // The content: a small config, a ~1 KiB blob, a 60 MB blob, and the manifest over them.
  const small = randomBytes(1024);
  const large = randomBytes(LARGE);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(small), sha256(large)] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(small), size: small.length },
      { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(large), size: large.length },
    ],
  }));

  const cases = [
    { what: 'manifest GET', path: `/v2/bench/image/manifests/latest`, headers: [`Accept: ${OCI_MANIFEST}`] },
    { what: 'small blob GET (1 KiB)', path: `/v2/bench/image/blobs/${sha256(small)}`, headers: [] },
    { what: 'large blob GET (60 MB)', path: `/v2/bench/image/blobs/${sha256(large)}`, headers: [] },
  ];
  const results: Record<string, Record<string, WrkResult>> = {};
  for (const start of [startDistribution, startBerth]) {
    const server = await start(tempDir(start === startBerth ? 'berth-registry' : 'distribution'));
    try {
      await push(server, 'bench/image', [config, small, large], manifest);
      for (const c of cases) {
        // Check the answer before measuring it.
        const check = await fetch(`${server.url}${c.path}`, { headers: Object.fromEntries(c.headers.map((h) => h.split(': '))) });
        const body = Buffer.from(await check.arrayBuffer());
        if (check.status !== 200 || sha256(body) !== c.path.split('/').pop()!.replace('latest', sha256(manifest))) {
          throw new Error(`${server.name}: ${c.what} answered ${check.status} with the wrong bytes`);
        }
        (results[c.what] ??= {})[server.name] = await wrk(server, c.path, c.headers);
      }
    } finally {
      await server.stop();
    }
  }

  const rows: string[][] = [];
  for (const c of cases) {
    for (const name of ['distribution', 'berth']) {
      const r = results[c.what][name];
      rows.push([`${c.what}: ${name}`, fmt(r.rps, 0), fmt(r.p99ms, 2), fmt(r.bytesPerSec / 1e9, 2), fmt(r.rssMiB, 1), fmt(r.hwmMiB, 1), r.errors]);
    }
  }
  table(['', 'req/s', 'p99 ms', 'GB/s', 'RSS MiB', 'HWM MiB', 'errors'], rows);

  section('ratios (berth / distribution)');
  const [man, sm, lg] = cases.map((c) => results[c.what]);
  const ratio = (a: number, b: number) => `${fmt(a / b, 2)}x`;
  for (const [c, r] of [[cases[0], man], [cases[1], sm], [cases[2], lg]] as const) {
    console.log(`${c.what}: req/s ${ratio(r.berth.rps, r.distribution.rps)}, p99 ${fmt(r.berth.p99ms, 2)} vs ${fmt(r.distribution.p99ms, 2)} ms, throughput ${ratio(r.berth.bytesPerSec, r.distribution.bytesPerSec)}`);
  }
  const peak = (name: string) => Math.max(...cases.map((c) => results[c.what][name].rssMiB));
  console.log(`peak RSS under load: berth ${fmt(peak('berth'), 1)} MiB, distribution ${fmt(peak('distribution'), 1)} MiB`);

  section('targets');
  verdict(man.berth.rps >= 2 * man.distribution.rps && man.berth.p99ms <= man.distribution.p99ms,
    `manifest GET: >= 2x distribution's req/s with p99 no worse (${ratio(man.berth.rps, man.distribution.rps)}, p99 ${fmt(man.berth.p99ms, 2)} vs ${fmt(man.distribution.p99ms, 2)} ms)`);
  verdict(sm.berth.rps >= 2 * sm.distribution.rps && sm.berth.p99ms <= sm.distribution.p99ms,
    `small blob GET: >= 2x distribution's req/s with p99 no worse (${ratio(sm.berth.rps, sm.distribution.rps)}, p99 ${fmt(sm.berth.p99ms, 2)} vs ${fmt(sm.distribution.p99ms, 2)} ms)`);
  verdict(lg.berth.bytesPerSec >= lg.distribution.bytesPerSec,
    `large blob GET: throughput >= distribution's (${fmt(lg.berth.bytesPerSec / 1e9, 2)} vs ${fmt(lg.distribution.bytesPerSec / 1e9, 2)} GB/s)`);
  verdict(peak('berth') < peak('distribution'), `RSS under load below distribution's (${fmt(peak('berth'), 1)} vs ${fmt(peak('distribution'), 1)} MiB)`);
});
