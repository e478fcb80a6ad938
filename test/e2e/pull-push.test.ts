import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import { join } from 'node:path';
import { BERTH, DOCKER, type RunResult, TestDaemon, busyboxRootfs, hostArch, importBusybox } from '../helpers/daemon.ts';
import { TestRegistry, freePort } from '../helpers/registry.ts';
import { dir, file, tarBytes } from '../helpers/tars.ts';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { createRegistryClient } from '../../src/distribution/client.ts';
import { parseReference } from '../../src/images/reference.ts';

const ACCEPT = [
  'application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** A manifest straight from the registry (no daemon in between), to know what a pull must end with. */
async function registryManifest(reg: TestRegistry, repo: string, ref: string): Promise<{ digest: string; json: { layers: { digest: string; size: number }[]; config: { digest: string } } }> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { headers: { Accept: ACCEPT } });
  assert.equal(res.status, 200, `GET manifest ${repo}:${ref}`);
  return { digest: res.headers.get('docker-content-digest')!, json: await res.json() as never };
}

/** The `<tag>: digest: sha256:… size: N` line a push ends with. */
function pushedDigest(out: string): string {
  const m = /: digest: (sha256:[a-f0-9]{64}) size: \d+/.exec(out);
  assert.ok(m, `no digest line in:\n${out}`);
  return m[1];
}

type ProxyMode = { kind: 'corrupt'; digest: string } | { kind: 'cut-once'; digest: string } | { kind: 'stall'; digest: string };

/**
 * A loopback HTTP proxy in front of a registry that can misbehave on one blob:
 * serve it with one byte flipped, cut the connection half-way through it once,
 * or stall half-way. It records every request, so tests can tell what a
 * client really sent (Range headers, uploads).
 */
class MisbehavingProxy {
  readonly server: Server;
  readonly port: number;
  readonly host: string;
  mode: ProxyMode | undefined;
  log: { method: string; url: string; range?: string }[] = [];
  #cut = false;
  stalled: (() => void) | undefined;

  private constructor(server: Server, port: number) {
    this.server = server;
    this.port = port;
    this.host = `127.0.0.1:${port}`;
  }

  static async start(upstreamPort: number): Promise<MisbehavingProxy> {
    const port = await freePort();
    let self!: MisbehavingProxy;
    const server = createServer((req, res) => self.handle(req, res, upstreamPort));
    self = new MisbehavingProxy(server, port);
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    return self;
  }

  handle(req: IncomingMessage, res: ServerResponse, upstreamPort: number): void {
    this.log.push({ method: req.method!, url: req.url!, range: req.headers.range });
    const target = this.mode && req.method === 'GET' && req.url!.endsWith(`/blobs/${this.mode.digest}`) ? this.mode : undefined;
    const up = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      if (!target || ur.statusCode !== 200 && ur.statusCode !== 206) {
        res.writeHead(ur.statusCode!, ur.headers);
        ur.pipe(res);
        return;
      }
      const chunks: Buffer[] = [];
      ur.on('data', (c: Buffer) => chunks.push(c));
      ur.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(ur.statusCode!, ur.headers);
        const half = Math.floor(body.length / 2);
        if (target.kind === 'corrupt') {
          body[half] ^= 0xff;
          res.end(body);
        } else if (target.kind === 'cut-once' && !this.#cut && !req.headers.range) {
          this.#cut = true;
          res.write(body.subarray(0, half), () => setTimeout(() => res.socket?.destroy(), 50));
        } else if (target.kind === 'stall') {
          res.write(body.subarray(0, half));
          this.stalled?.();
        } else {
          res.end(body);
        }
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * Runs a CLI without blocking this process: commands that go through the
 * in-process proxy must leave its event loop free (spawnSync would deadlock).
 */
function cliAsync(d: TestDaemon, cli: 'berth' | 'docker', args: string[]): Promise<RunResult> {
  const env = { ...process.env, ...d.env, ...(cli === 'docker' ? { DOCKER_CONFIG: join(d.dir, 'docker-config') } : {}) };
  const child = spawn(cli === 'berth' ? BERTH : DOCKER, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) => child.on('close', (code) => {
    clearTimeout(timer);
    resolve({ code: code ?? -1, stdout, stderr });
  }));
}

/** Blob files and snapshot directories on disk: what a failed pull must leave as it found it. */
function storeState(d: TestDaemon): { blobs: string[]; snapshots: string[]; ingest: string[] } {
  const ls = (p: string) => (existsSync(p) ? readdirSync(p).sort() : []);
  return {
    blobs: ls(join(d.dataRoot, 'content', 'blobs', 'sha256')),
    snapshots: ls(join(d.dataRoot, 'snapshots')),
    ingest: ls(join(d.dataRoot, 'content', 'ingest')),
  };
}

/** Nothing on disk that was not there before (a GC may have swept older garbage meanwhile), and no ingest left. */
function assertNothingAdded(before: ReturnType<typeof storeState>, after: ReturnType<typeof storeState>): void {
  assert.deepEqual(after.blobs.filter((b) => !before.blobs.includes(b)), [], 'no new blob');
  assert.deepEqual(after.snapshots.filter((s) => !before.snapshots.includes(s)), [], 'no new snapshot');
  assert.deepEqual(after.ingest, [], 'no ingest left');
}

/** Waits for a condition the daemon reaches on its own (a GC after a cancel). */
async function eventually(check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(check(), 'condition not reached in time');
}

describe('pull and push against docker-registry (distribution 2.8) on loopback', () => {
  let d: TestDaemon;
  let reg: TestRegistry;
  let proxy: MisbehavingProxy;
  let appId: string;
  let appDigest: string;
  before(async () => {
    reg = await TestRegistry.start();
    proxy = await MisbehavingProxy.start(reg.port);
    d = await TestDaemon.start();
    importBusybox(d);
    // A two-layer image: busybox plus a committed change.
    assert.equal(d.berth(['run', '--name', 'maker', 'busybox', 'sh', '-c', 'echo hello-from-the-registry > /greeting']).code, 0);
    const c = d.berth(['commit', 'maker', `${reg.host}/app:v1`]);
    assert.equal(c.code, 0, c.stderr);
    appId = c.stdout.trim();
    d.berth(['rm', 'maker']);
  });
  after(async () => {
    await d?.cleanup();
    await proxy?.close();
    await reg?.cleanup();
  });

  test('berth push sends both layers and prints the digest; docker push of the same image gives the same digest', () => {
    const r = d.berth(['push', `${reg.host}/app:v1`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^The push refers to repository \\[${reg.host}/app\\]$`, 'm'));
    assert.equal(r.stdout.match(/: Pushed$/gm)?.length, 2, r.stdout);
    appDigest = pushedDigest(r.stdout);
    assert.equal(d.berth(['tag', `${reg.host}/app:v1`, `${reg.host}/app:docker`]).code, 0);
    const dr = d.docker(['push', `${reg.host}/app:docker`]);
    assert.equal(dr.code, 0, dr.stderr);
    assert.equal(dr.stdout.match(/: Layer already exists$/gm)?.length, 2, dr.stdout);
    assert.equal(pushedDigest(dr.stdout), appDigest, 'the stored manifest goes up byte for byte');
    // The digest is recorded locally, as Docker does after a push.
    const digests = d.berth(['image', 'inspect', '--format', '{{json .RepoDigests}}', `${reg.host}/app:v1`]);
    assert.deepEqual(JSON.parse(digests.stdout), [`${reg.host}/app@${appDigest}`]);
  });

  test('the registry holds what berth pushed: skopeo-independent check of manifest and config', async () => {
    const m = await registryManifest(reg, 'app', 'v1');
    assert.equal(m.digest, appDigest);
    assert.equal(m.json.config.digest, appId);
    assert.equal(m.json.layers.length, 2);
  });

  test('pull by tag (berth) and by digest (docker) bring back the same image, which runs and holds the file', () => {
    const rm = d.berth(['rmi', `${reg.host}/app:v1`, `${reg.host}/app:docker`]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, new RegExp(`Deleted: ${appId}`));

    const byTag = d.berth(['pull', `${reg.host}/app:v1`]);
    assert.equal(byTag.code, 0, byTag.stderr);
    assert.match(byTag.stdout, /^v1: Pulling from app$/m);
    assert.match(byTag.stdout, /: Already exists$/m, 'the busybox layer is here already');
    assert.match(byTag.stdout, /: Pull complete$/m);
    assert.match(byTag.stdout, new RegExp(`^Digest: ${appDigest}$`, 'm'));
    assert.match(byTag.stdout, new RegExp(`^Status: Downloaded newer image for ${reg.host}/app:v1$`, 'm'));
    assert.equal(byTag.stdout.trim().split('\n').at(-1), `${reg.host}/app:v1`);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', `${reg.host}/app:v1`]).stdout.trim(), appId);
    const again = d.berth(['pull', `${reg.host}/app:v1`]);
    assert.match(again.stdout, new RegExp(`^Status: Image is up to date for ${reg.host}/app:v1$`, 'm'));
    const cat = d.berth(['run', '--rm', `${reg.host}/app:v1`, 'cat', '/greeting']);
    assert.equal(cat.stdout, 'hello-from-the-registry\n', cat.stderr);

    assert.equal(d.berth(['rmi', `${reg.host}/app:v1`]).code, 0);
    const byDigest = d.docker(['pull', `${reg.host}/app@${appDigest}`]);
    assert.equal(byDigest.code, 0, byDigest.stderr);
    assert.match(byDigest.stdout, new RegExp(`^Status: Downloaded newer image for ${reg.host}/app@${appDigest}$`, 'm'));
    for (const cli of ['berth', 'docker'] as const) {
      const run = (args: string[]) => (cli === 'berth' ? d.berth(args) : d.docker(args));
      assert.equal(run(['image', 'inspect', '--format', '{{.Id}}', `${reg.host}/app@${appDigest}`]).stdout.trim(), appId);
      const table = run(['images', '--digests', '--format', '{{.Repository}} {{.Tag}} {{.Digest}} {{.ID}}']);
      assert.ok(table.stdout.split('\n').includes(`${reg.host}/app <none> ${appDigest} ${appId.slice(7, 19)}`), `${cli}:\n${table.stdout}`);
    }
    const dcat = d.docker(['run', '--rm', `${reg.host}/app@${appDigest}`, 'cat', '/greeting']);
    assert.equal(dcat.stdout, 'hello-from-the-registry\n', dcat.stderr);
  });

  test('docker run and berth run pull a missing image; --pull never refuses; --pull always pulls first', () => {
    d.berth(['rmi', '-f', `${reg.host}/app@${appDigest}`]);
    const dr = d.docker(['run', '--rm', `${reg.host}/app:v1`, 'cat', '/greeting']);
    assert.equal(dr.stdout, 'hello-from-the-registry\n', dr.stderr);
    assert.match(dr.stderr, new RegExp(`Unable to find image '${reg.host}/app:v1' locally`));
    assert.equal(d.berth(['rmi', `${reg.host}/app:v1`]).code, 0);

    const never = d.berth(['run', '--rm', '--pull', 'never', `${reg.host}/app:v1`, 'true']);
    assert.equal(never.code, 125);
    assert.match(never.stderr, /No such image/);
    const br = d.berth(['run', '--rm', `${reg.host}/app:v1`, 'cat', '/greeting']);
    assert.equal(br.stdout, 'hello-from-the-registry\n', br.stderr);
    assert.match(br.stderr, /Unable to find image .* locally\n(.|\n)*Pull complete/);
    const always = d.berth(['run', '--rm', '--pull', 'always', `${reg.host}/app:v1`, 'cat', '/greeting']);
    assert.equal(always.stdout, 'hello-from-the-registry\n', always.stderr);
    assert.match(always.stderr, /Image is up to date/);
    const bad = d.berth(['run', '--rm', '--pull', 'sometimes', `${reg.host}/app:v1`, 'true']);
    assert.equal(bad.code, 125);
    assert.match(bad.stderr, /invalid pull option: 'sometimes'/);
  });

  test('push sends only the layers the registry lacks, and mounts a blob another repository holds', async () => {
    assert.equal(d.berth(['run', '--name', 'more', `${reg.host}/app:v1`, 'sh', '-c', 'echo second > /second']).code, 0);
    const c = d.berth(['commit', 'more', `${proxy.host}/app:v2`]);
    assert.equal(c.code, 0, c.stderr);
    d.berth(['rm', 'more']);
    proxy.log = [];
    const r = await cliAsync(d, 'berth', ['push', `${proxy.host}/app:v2`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.match(/: Layer already exists$/gm)?.length, 2, r.stdout);
    assert.equal(r.stdout.match(/: Pushed$/gm)?.length, 1, r.stdout);
    // What really went over the wire: one upload for the new layer, one for the config.
    const uploads = proxy.log.filter((l) => l.method === 'POST' && /\/blobs\/uploads\/$/.test(l.url.split('?')[0]));
    assert.equal(uploads.length, 2, JSON.stringify(proxy.log, null, 1));
    const puts = proxy.log.filter((l) => l.method === 'PUT' && l.url.includes('/blobs/uploads/'));
    assert.equal(puts.length, 2);

    // Another repository on the same registry: the layers are mounted, not sent again.
    assert.equal(d.berth(['tag', `${proxy.host}/app:v2`, `${proxy.host}/copy:v2`]).code, 0);
    proxy.log = [];
    const m = await cliAsync(d, 'berth', ['push', `${proxy.host}/copy:v2`]);
    assert.equal(m.code, 0, m.stderr);
    assert.equal(m.stdout.match(/: Mounted from app$/gm)?.length, 3, m.stdout);
    assert.equal(proxy.log.filter((l) => l.method === 'PATCH').length, 0, 'no layer bytes went up');
  });

  test('-a pulls (and pushes) every tag', async () => {
    const p = d.berth(['push', '-a', `${reg.host}/app`]);
    assert.equal(p.code, 0, p.stderr);
    d.berth(['rmi', '-f', `${reg.host}/app:v1`, `${reg.host}/app:docker`]);
    const r = d.berth(['pull', '-a', `${reg.host}/app`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^v1: Pulling from app$/m);
    assert.match(r.stdout, /^docker: Pulling from app$/m);
    assert.equal(r.stdout.trim().split('\n').at(-1), `${reg.host}/app`);
    const listed = (await (await fetch(`${reg.url}/v2/app/tags/list`)).json() as { tags: string[] }).tags.sort();
    assert.deepEqual(listed, ['docker', 'v1', 'v2']);
    const tags = d.berth(['images', '--format', '{{.Tag}}', `${reg.host}/app`]).stdout.trim().split('\n').sort();
    assert.deepEqual(tags, listed);
    const dr = d.docker(['pull', '-a', `${reg.host}/app`]);
    assert.equal(dr.code, 0, dr.stderr);
    assert.match(dr.stdout, new RegExp(`Status: Image is up to date for ${reg.host}/app$`, 'm'));
    const refused = d.berth(['pull', '-a', `${reg.host}/app:v1`]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /tag can't be used with --all-tags\/-a/);
  });

  test('a two-platform index: docker pull --platform linux/arm64, then run --platform linux/arm64 prints aarch64', () => {
    const imp = (arch: string) => d.berth(['import', '--platform', `linux/${arch}`, '--change', 'CMD ["sh"]', busyboxRootfs(arch as 'amd64'), `${reg.host}/multi:${arch}`]);
    for (const arch of ['amd64', 'arm64']) {
      assert.equal(imp(arch).code, 0);
      const p = d.berth(['push', `${reg.host}/multi:${arch}`]);
      assert.equal(p.code, 0, p.stderr);
    }
    const create = d.docker(['manifest', 'create', '--insecure', `${reg.host}/multi:latest`, `${reg.host}/multi:amd64`, `${reg.host}/multi:arm64`]);
    assert.equal(create.code, 0, create.stderr);
    const push = d.docker(['manifest', 'push', '--insecure', `${reg.host}/multi:latest`]);
    assert.equal(push.code, 0, push.stderr);
    const indexDigest = push.stdout.trim().split('\n').at(-1)!;
    assert.match(indexDigest, /^sha256:[a-f0-9]{64}$/);
    const armId = d.berth(['image', 'inspect', '--format', '{{.Id}}', `${reg.host}/multi:arm64`]).stdout.trim();
    d.berth(['rmi', `${reg.host}/multi:amd64`, `${reg.host}/multi:arm64`]);

    const pulled = d.docker(['pull', '--platform', 'linux/arm64', `${reg.host}/multi:latest`]);
    assert.equal(pulled.code, 0, pulled.stderr);
    assert.match(pulled.stdout, new RegExp(`^Digest: ${indexDigest}$`, 'm'), 'the repo digest of an index is the index digest');
    const inspect = d.docker(['image', 'inspect', '--format', '{{.Id}} {{.Architecture}} {{json .RepoDigests}}', `${reg.host}/multi:latest`]);
    assert.equal(inspect.stdout.trim(), `${armId} arm64 ["${reg.host}/multi@${indexDigest}"]`);
    const uname = d.docker(['run', '--rm', '--platform', 'linux/arm64', `${reg.host}/multi:latest`, 'uname', '-m']);
    assert.equal(uname.code, 0, uname.stderr);
    assert.equal(uname.stdout.trim(), 'aarch64');

    // berth's CLI picks the host's platform by default, and refuses one the index lacks.
    d.berth(['rmi', `${reg.host}/multi:latest`]);
    const host = d.berth(['pull', `${reg.host}/multi:latest`]);
    assert.equal(host.code, 0, host.stderr);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Architecture}}', `${reg.host}/multi:latest`]).stdout.trim(), hostArch());
    const none = d.berth(['pull', '--platform', 'linux/s390x', `${reg.host}/multi:latest`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no matching manifest for linux\/s390x in the manifest list entries/);
  });

  test('GET /distribution/{name}/json answers the descriptor and the platforms', async () => {
    const get = (name: string) => new Promise<{ status: number; body: { Descriptor: { digest: string; mediaType: string }; Platforms: { architecture: string; os: string }[] } }>((resolve, reject) => {
      request({ socketPath: d.socket, path: `/v1.50/distribution/${name}/json` }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
      }).on('error', reject).end();
    });
    const idx = await get(`${reg.host}/multi:latest`);
    assert.equal(idx.status, 200);
    assert.match(idx.body.Descriptor.mediaType, /index|list/);
    assert.deepEqual(idx.body.Platforms.map((p) => `${p.os}/${p.architecture}`).sort(), ['linux/amd64', 'linux/arm64']);
    const one = await get(`${reg.host}/app:v1`);
    assert.equal(one.body.Descriptor.digest, appDigest);
    assert.deepEqual(one.body.Platforms.map((p) => `${p.os}/${p.architecture}`), [`linux/${hostArch()}`]);
    const missing = await get(`${reg.host}/app:nope`);
    assert.equal(missing.status, 404);
  });

  test('a registry serving wrong bytes: the pull fails with a digest error and stores no blob, snapshot or image', async () => {
    // A fresh image whose one layer (busybox plus 4 MB of random bytes) nothing else here shares.
    const tar = join(d.dir, 'fresh.tar');
    copyFileSync(busyboxRootfs(), tar);
    mkdirSync(join(d.dir, 'extra'));
    writeFileSync(join(d.dir, 'extra', 'random.bin'), randomBytes(4 << 20));
    assert.equal(spawnSync('tar', ['--append', '-f', tar, '-C', join(d.dir, 'extra'), 'random.bin']).status, 0);
    const imp = d.berth(['import', '--change', 'ENV FRESH=1', tar, `${reg.host}/fresh:v1`]);
    assert.equal(imp.code, 0, imp.stderr);
    assert.equal(d.berth(['push', `${reg.host}/fresh:v1`]).code, 0);
    const m = await registryManifest(reg, 'fresh', 'v1');
    const layer = m.json.layers[0].digest;
    const rm = d.berth(['rmi', `${reg.host}/fresh:v1`]);
    assert.equal(rm.code, 0, rm.stderr);
    await eventually(() => !storeState(d).blobs.includes(layer.slice(7)));
    const beforeState = storeState(d);

    proxy.mode = { kind: 'corrupt', digest: layer };
    const r = await cliAsync(d, 'berth', ['pull', `${proxy.host}/fresh:v1`]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`filesystem layer verification failed for digest ${layer}`));
    assertNothingAdded(beforeState, storeState(d));
    assert.notEqual(d.berth(['image', 'inspect', `${proxy.host}/fresh:v1`]).code, 0);
    const dr = await cliAsync(d, 'docker', ['pull', `${proxy.host}/fresh:v1`]);
    proxy.mode = undefined;
    assert.notEqual(dr.code, 0);
    assert.match(dr.stderr, /verification failed/);
    assertNothingAdded(beforeState, storeState(d));
  });

  test('a hostile layer from a registry is refused while it unpacks, and nothing is kept', async () => {
    // Pushed straight to the registry with berth's client: a gzip layer whose tar climbs out of its root, with the right digests.
    const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}` as const;
    const tar = await tarBytes([dir('etc/'), file('etc/ok', 'fine\n'), file('../../../tmp/berth-pull-pwned', 'x')]);
    const gz = gzipSync(tar);
    const config = Buffer.from(JSON.stringify({ architecture: hostArch(), os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(tar)] }, config: {} }));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: sha(gz), size: gz.length }],
    }));
    const repo = createRegistryClient({ insecure: [], mirrors: [], credentials: () => undefined }).repository(parseReference(`${reg.host}/hostile:v1`), ['pull', 'push']);
    for (const b of [config, gz]) await repo.pushBlob({ mediaType: 'application/octet-stream', digest: sha(b), size: b.length }, () => Readable.from([b]));
    await repo.putManifest('v1', manifest, 'application/vnd.docker.distribution.manifest.v2+json');

    const beforeState = storeState(d);
    for (const cli of ['berth', 'docker'] as const) {
      const r = await cliAsync(d, cli, ['pull', `${reg.host}/hostile:v1`]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /escapes the layer root/);
      assertNothingAdded(beforeState, storeState(d));
    }
    assert.equal(existsSync('/tmp/berth-pull-pwned'), false);
    assert.notEqual(d.berth(['image', 'inspect', `${reg.host}/hostile:v1`]).code, 0);
  });

  test('an interrupted download resumes with Range and the image is whole', async () => {
    const m = await registryManifest(reg, 'fresh', 'v1');
    const layer = m.json.layers[0].digest;
    proxy.mode = { kind: 'cut-once', digest: layer };
    proxy.log = [];
    const r = await cliAsync(d, 'berth', ['pull', `${proxy.host}/fresh:v1`]);
    proxy.mode = undefined;
    assert.equal(r.code, 0, r.stderr + d.log.slice(-2000));
    const gets = proxy.log.filter((l) => l.method === 'GET' && l.url.endsWith(layer));
    assert.equal(gets.length, 2, JSON.stringify(gets));
    assert.match(gets[1].range ?? '', /^bytes=[1-9]\d*-$/, 'the second request asks only for the rest');
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', `${proxy.host}/fresh:v1`]).stdout.trim(), m.json.config.digest);
    const run = d.berth(['run', '--rm', `${proxy.host}/fresh:v1`, 'sh', '-c', 'echo $FRESH; wc -c < /random.bin']);
    assert.equal(run.stdout, `1\n${4 << 20}\n`, run.stderr);
  });

  test('a pull cancelled by its client leaves a clean store', async () => {
    const m = await registryManifest(reg, 'fresh', 'v1');
    const layer = m.json.layers[0].digest;
    assert.equal(d.berth(['rmi', '-f', `${proxy.host}/fresh:v1`]).code, 0);
    await eventually(() => !storeState(d).blobs.includes(layer.slice(7)));
    const beforeState = storeState(d);
    proxy.mode = { kind: 'stall', digest: layer };
    const stalled = new Promise<void>((r) => (proxy.stalled = r));
    const child = spawn(BERTH, ['pull', `${proxy.host}/fresh:v1`], { env: { ...process.env, ...d.env }, stdio: 'ignore' });
    await stalled;
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGKILL');
    await eventually(() => {
      const now = storeState(d);
      return now.ingest.length === 0 && now.blobs.every((b) => beforeState.blobs.includes(b)) && now.snapshots.every((x) => beforeState.snapshots.includes(x));
    });
    proxy.mode = undefined;
    proxy.server.closeAllConnections();
    assert.notEqual(d.berth(['image', 'inspect', `${proxy.host}/fresh:v1`]).code, 0);
  });

  test('two pulls of the same image at once both succeed and share one image', async () => {
    const m = await registryManifest(reg, 'fresh', 'v1');
    const [a, b] = await Promise.all([cliAsync(d, 'berth', ['pull', `${reg.host}/fresh:v1`]), cliAsync(d, 'docker', ['pull', `${reg.host}/fresh:v1`])]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(d.berth(['image', 'inspect', '--format', '{{.Id}}', `${reg.host}/fresh:v1`]).stdout.trim(), m.json.config.digest);
    const run = d.berth(['run', '--rm', `${reg.host}/fresh:v1`, 'sh', '-c', 'wc -c < /random.bin']);
    assert.equal(run.stdout, `${4 << 20}\n`, run.stderr);
  });

  test('refusals: a missing tag, a missing local image, a digest push', () => {
    const missing = d.berth(['pull', `${reg.host}/app:nope`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /manifest unknown/);
    const nolocal = d.berth(['push', `${reg.host}/nothing:here`]);
    assert.equal(nolocal.code, 1);
    assert.match(nolocal.stderr, new RegExp(`An image does not exist locally with the tag: ${reg.host}/nothing:here`));
    const dnolocal = d.docker(['push', `${reg.host}/nothing:here`]);
    assert.equal(dnolocal.code, 1);
    const digest = d.berth(['push', `${reg.host}/app@${appDigest}`]);
    assert.equal(digest.code, 1);
  });
});

describe('pull and push with credentials', () => {
  let d: TestDaemon;
  let reg: TestRegistry;
  let config: string;
  before(async () => {
    reg = await TestRegistry.start({ users: { alice: 'right-password' } });
    d = await TestDaemon.start();
    importBusybox(d, `${reg.host}/private:v1`);
    config = join(d.dir, 'berth-config');
    mkdirSync(config);
  });
  after(async () => {
    await d?.cleanup();
    await reg?.cleanup();
  });
  const useCreds = (password: string) => writeFileSync(join(config, 'config.json'), JSON.stringify({
    auths: { [reg.host]: { auth: Buffer.from(`alice:${password}`).toString('base64') } },
  }));

  test('wrong credentials: unauthorized, exit 1, with both CLIs; nothing is pushed', async () => {
    useCreds('wrong-password');
    const env = { DOCKER_CONFIG: config };
    const r = d.berth(['push', `${reg.host}/private:v1`], { env });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /unauthorized: /);
    assert.doesNotMatch(r.stderr + r.stdout, /wrong-password/);
    const dr = d.docker(['push', `${reg.host}/private:v1`], { env });
    assert.equal(dr.code, 1, dr.stdout);
    assert.match(dr.stderr + dr.stdout, /unauthorized: /);
    const p = d.berth(['pull', `${reg.host}/private:v1`], { env });
    assert.equal(p.code, 1);
    assert.match(p.stderr, /unauthorized: /);
    const none = d.berth(['pull', `${reg.host}/private:v1`]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /unauthorized: /);
    // docker pull reports it too, at once: a 401 from berthd itself would make the CLI prompt for a login and wait.
    const dp = d.docker(['pull', `${reg.host}/private:v1`], { env, timeoutMs: 30_000 });
    assert.equal(dp.code, 1, dp.stdout);
    assert.match(dp.stderr, /unauthorized: /);
    assert.doesNotMatch(dp.stdout + dp.stderr, /Username/);
  });

  test('the right credentials from config.json push and pull', () => {
    useCreds('right-password');
    const env = { DOCKER_CONFIG: config };
    const r = d.berth(['push', `${reg.host}/private:v1`], { env });
    assert.equal(r.code, 0, r.stderr);
    const digest = pushedDigest(r.stdout);
    assert.equal(d.berth(['rmi', `${reg.host}/private:v1`]).code, 0);
    const p = d.docker(['pull', `${reg.host}/private:v1`], { env });
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, new RegExp(`Digest: ${digest}`));
  });
});
