// `berth registry serve` and `berth registry gc` as users and clients meet them: the OCI
// Distribution endpoints and error codes over HTTP, skopeo and the real docker CLI as clients,
// both auth modes, TLS, a kill -9 in the middle of an upload, and garbage collection.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { BERTH, DOCKER, TestDaemon, busyboxRootfs, importBusybox, run } from '../helpers/daemon.ts';

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

const sha256 = (b: string | Uint8Array) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const TMP = mkdtempSync(join(tmpdir(), 'berth-registry-e2e-'));
/** Every registry a test started: one that a failed assertion left running is killed at the end. */
const started = new Set<ChildProcess>();
after(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  rmSync(TMP, { recursive: true, force: true });
});

/** One `berth registry serve` process on a free loopback port. */
class Registry {
  readonly root: string;
  readonly args: string[];
  proc!: ChildProcess;
  port = 0;
  scheme = 'http';
  log = '';

  constructor(root: string, args: string[]) {
    this.root = root;
    this.args = args;
  }

  static async start(root: string, args: string[] = []): Promise<Registry> {
    const r = new Registry(root, args);
    await r.#spawn();
    return r;
  }

  async #spawn(): Promise<void> {
    this.log = '';
    this.proc = spawn(BERTH, ['registry', 'serve', '--listen', '127.0.0.1:0', '--root', this.root, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    started.add(this.proc);
    this.proc.stderr!.on('data', (c) => (this.log += c));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`registry did not start:\n${this.log}`)), 20_000);
      let out = '';
      this.proc.stdout!.on('data', (c) => {
        out += c;
        const m = /listening on (https?):\/\/127\.0\.0\.1:(\d+)\n/.exec(out);
        if (m) {
          clearTimeout(timer);
          this.scheme = m[1];
          this.port = Number(m[2]);
          resolve();
        }
      });
      this.proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`registry exited with ${code}:\n${this.log}`));
      });
    });
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `${this.scheme}://${this.host}`;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.#spawn();
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return this.proc.exitCode;
    const done = new Promise<number | null>((r) => this.proc.once('exit', (code) => r(code)));
    this.proc.kill('SIGTERM');
    return done;
  }

  async kill9(): Promise<void> {
    const done = new Promise<void>((r) => this.proc.once('exit', () => r()));
    this.proc.kill('SIGKILL');
    await done;
  }

  fetch(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.url}${path}`, { redirect: 'manual', ...init });
  }
}

async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, 'an OCI error body');
  assert.equal(typeof body.errors[0].message, 'string');
  return body.errors[0].code;
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  assert.equal(res.status, status, `status for ${code}`);
  assert.equal(await errorCode(res), code);
}

/** Monolithic push of one blob (POST ?digest=). */
async function pushBlob(reg: Registry, name: string, data: Uint8Array, auth?: string): Promise<string> {
  const digest = sha256(data);
  const res = await reg.fetch(`/v2/${name}/blobs/uploads/?digest=${digest}`, {
    method: 'POST', body: new Blob([data as Uint8Array<ArrayBuffer>]), headers: { 'Content-Type': 'application/octet-stream', ...(auth ? { Authorization: auth } : {}) },
  });
  assert.equal(res.status, 201, await res.text());
  return digest;
}

async function pushManifest(reg: Registry, name: string, ref: string, manifest: object, type = OCI_MANIFEST): Promise<{ digest: string; res: Response }> {
  const body = JSON.stringify(manifest);
  const res = await reg.fetch(`/v2/${name}/manifests/${ref}`, { method: 'PUT', body, headers: { 'Content-Type': type } });
  assert.equal(res.status, 201, await res.clone().text());
  assert.equal(res.headers.get('docker-content-digest'), sha256(body));
  return { digest: sha256(body), res };
}

/** A small image (config + one layer) pushed over HTTP; returns its digests. */
async function pushSmallImage(reg: Registry, name: string, tag: string, seed: string, type = OCI_MANIFEST) {
  const layer = await pushBlob(reg, name, Buffer.from(`layer ${seed}`));
  const configBytes = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(`x${seed}`)] } }));
  const config = await pushBlob(reg, name, configBytes);
  const manifest = {
    schemaVersion: 2, mediaType: type,
    config: { mediaType: type === OCI_MANIFEST ? 'application/vnd.oci.image.config.v1+json' : 'application/vnd.docker.container.image.v1+json', digest: config, size: configBytes.length },
    layers: [{ mediaType: type === OCI_MANIFEST ? 'application/vnd.oci.image.layer.v1.tar' : 'application/vnd.docker.image.rootfs.diff.tar', digest: layer, size: Buffer.byteLength(`layer ${seed}`) }],
  };
  const { digest } = await pushManifest(reg, name, tag, manifest, type);
  return { digest, config, layer, bytes: Buffer.from(JSON.stringify(manifest)) };
}

/** An OCI image layout of busybox for one architecture, as skopeo reads it; returns its digests. */
function busyboxLayout(dir: string, arch: 'amd64' | 'arm64') {
  const tar = readFileSync(busyboxRootfs(arch));
  const layer = gzipSync(tar, { level: 1 });
  const config = Buffer.from(JSON.stringify({
    architecture: arch, os: 'linux', config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: [sha256(tar)] }, history: [{ created_by: 'busybox-rootfs' }],
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length }],
  }));
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer, config, manifest]) writeFileSync(join(dir, 'blobs', 'sha256', sha256(b).slice(7)), b);
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  }));
  return { manifest: sha256(manifest), config: sha256(config), layer: sha256(layer), layerBytes: layer };
}

/** skopeo with its own auth file and no policy file needed; never the host's. */
function skopeo(args: string[], env: Record<string, string> = {}) {
  return run('skopeo', ['--insecure-policy', ...args], { env: { REGISTRY_AUTH_FILE: join(TMP, 'skopeo-auth.json'), ...env }, timeoutMs: 120_000 });
}

function skopeoOk(args: string[]): string {
  const r = skopeo(args);
  assert.equal(r.code, 0, `skopeo ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A request with its path exactly as given. */
function rawRequest(reg: Registry, method: string, path: string, body?: string): Promise<{ status: number; json: { errors: { code: string }[] } }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: reg.port, method, path }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c) => (text += c)).on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Every file under a directory, relative, so a test can tell nothing was written outside the root. */
function treeOf(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: false }).map(String).sort();
}

describe('registry serve: the OCI Distribution endpoints', () => {
  let reg: Registry;
  before(async () => {
    reg = await Registry.start(join(TMP, 'api'));
  });
  after(async () => {
    assert.equal(await reg.stop(), 0, 'a clean stop on SIGTERM');
  });

  it('answers /v2/ with 200 and the API version header', async () => {
    const res = await reg.fetch('/v2/');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
  });

  it('pushes a blob in one request and serves it by HEAD, GET and Range', async () => {
    const data = randomBytes(100_000);
    const digest = await pushBlob(reg, 'pull/blob', data);
    const head = await reg.fetch(`/v2/pull/blob/blobs/${digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '100000');
    assert.equal(head.headers.get('docker-content-digest'), digest);
    const get = await reg.fetch(`/v2/pull/blob/blobs/${digest}`);
    assert.equal(get.headers.get('docker-content-digest'), digest);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), digest);
    const part = await reg.fetch(`/v2/pull/blob/blobs/${digest}`, { headers: { Range: 'bytes=10-19' } });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), 'bytes 10-19/100000');
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), data.subarray(10, 20));
    const tail = await reg.fetch(`/v2/pull/blob/blobs/${digest}`, { headers: { Range: 'bytes=99990-' } });
    assert.deepEqual(Buffer.from(await tail.arrayBuffer()), data.subarray(99990));
    const bad = await reg.fetch(`/v2/pull/blob/blobs/${digest}`, { headers: { Range: 'bytes=200000-' } });
    assert.equal(bad.status, 416);
    assert.equal(bad.headers.get('content-range'), 'bytes */100000');
    await bad.body?.cancel();
  });

  it('answers BLOB_UNKNOWN for a blob the repository lacks, even when another repository has it', async () => {
    const digest = await pushBlob(reg, 'pull/one', Buffer.from('only in one'));
    await expectError(await reg.fetch(`/v2/pull/other/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    await expectError(await reg.fetch(`/v2/pull/one/blobs/${sha256('never pushed')}`), 404, 'BLOB_UNKNOWN');
    const head = await reg.fetch(`/v2/pull/one/blobs/${sha256('never pushed')}`, { method: 'HEAD' });
    assert.equal(head.status, 404);
    assert.equal(await head.text(), '', 'a HEAD answer has no body');
  });

  it('uploads in chunks with Content-Range, reports status, and refuses a chunk out of order with 416', async () => {
    const data = randomBytes(300_000);
    const post = await reg.fetch('/v2/push/chunked/blobs/uploads/', { method: 'POST' });
    assert.equal(post.status, 202);
    const uuid = post.headers.get('docker-upload-uuid')!;
    assert.match(uuid, /^[0-9a-f-]{36}$/);
    let location = post.headers.get('location')!;
    assert.equal(location, `/v2/push/chunked/blobs/uploads/${uuid}`);
    assert.equal(post.headers.get('range'), '0-0');

    const first = await reg.fetch(location, { method: 'PATCH', body: data.subarray(0, 100_000), headers: { 'Content-Range': '0-99999', 'Content-Type': 'application/octet-stream' } });
    assert.equal(first.status, 202);
    assert.equal(first.headers.get('range'), '0-99999');
    location = first.headers.get('location')!;

    const status = await reg.fetch(location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.get('range'), '0-99999');
    assert.equal(status.headers.get('docker-upload-uuid'), uuid);

    await expectError(await reg.fetch(location, { method: 'PATCH', body: data.subarray(200_000), headers: { 'Content-Range': '200000-299999' } }), 416, 'BLOB_UPLOAD_INVALID');
    // A Content-Range that disagrees with the body's length.
    await expectError(await reg.fetch(location, { method: 'PATCH', body: data.subarray(100_000, 200_000), headers: { 'Content-Range': '100000-100009' } }), 416, 'SIZE_INVALID');
    await expectError(await reg.fetch(location, { method: 'PATCH', body: 'x', headers: { 'Content-Range': 'bytes=junk' } }), 416, 'BLOB_UPLOAD_INVALID');
    assert.equal((await reg.fetch(location)).headers.get('range'), '0-99999', 'refused chunks left nothing behind');

    const second = await reg.fetch(location, { method: 'PATCH', body: data.subarray(100_000, 200_000), headers: { 'Content-Range': '100000-199999' } });
    assert.equal(second.status, 202);
    assert.equal(second.headers.get('range'), '0-199999');
    const digest = sha256(data);
    // The last chunk rides on the closing PUT.
    const put = await reg.fetch(`${location}?digest=${digest}`, { method: 'PUT', body: data.subarray(200_000), headers: { 'Content-Range': '200000-299999' } });
    assert.equal(put.status, 201);
    assert.equal(put.headers.get('location'), `/v2/push/chunked/blobs/${digest}`);
    assert.equal(put.headers.get('docker-content-digest'), digest);
    const get = await reg.fetch(`/v2/push/chunked/blobs/${digest}`);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), digest);
    await expectError(await reg.fetch(location), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('refuses an upload whose digest does not match (DIGEST_INVALID) and stores nothing', async () => {
    const data = Buffer.from('these bytes');
    const claimed = sha256('other bytes');
    await expectError(await reg.fetch(`/v2/push/bad/blobs/uploads/?digest=${claimed}`, { method: 'POST', body: data }), 400, 'DIGEST_INVALID');
    const post = await reg.fetch('/v2/push/bad/blobs/uploads/', { method: 'POST' });
    const location = post.headers.get('location')!;
    await expectError(await reg.fetch(`${location}?digest=${claimed}`, { method: 'PUT', body: data }), 400, 'DIGEST_INVALID');
    await expectError(await reg.fetch(location), 404, 'BLOB_UPLOAD_UNKNOWN');
    for (const d of [claimed, sha256(data)]) {
      assert.equal((await reg.fetch(`/v2/push/bad/blobs/${d}`, { method: 'HEAD' })).status, 404);
      assert.ok(!existsSync(join(reg.root, 'blobs', 'sha256', d.slice(7))), 'no blob file');
    }
    await expectError(await reg.fetch(`${location.replace(/[^/]+$/, 'x')}`), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await reg.fetch(`/v2/push/bad/blobs/uploads/?digest=sha256:1234`, { method: 'POST', body: data }), 400, 'DIGEST_INVALID');
    await expectError(await reg.fetch(`${(await reg.fetch('/v2/push/bad/blobs/uploads/', { method: 'POST' })).headers.get('location')}`, { method: 'PUT' }), 400, 'DIGEST_INVALID');
  });

  it('answers BLOB_UPLOAD_UNKNOWN for unknown sessions and cancels one with DELETE', async () => {
    const unknown = '/v2/push/x/blobs/uploads/01234567-89ab-cdef-0123-456789abcdef';
    await expectError(await reg.fetch(unknown), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await reg.fetch(unknown, { method: 'PATCH', body: 'abc' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await reg.fetch(`${unknown}?digest=${sha256('abc')}`, { method: 'PUT', body: 'abc' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await reg.fetch(unknown, { method: 'DELETE' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    await expectError(await reg.fetch('/v2/push/x/blobs/uploads/..%2F..%2Fetc', { method: 'PATCH', body: 'abc' }), 404, 'BLOB_UPLOAD_UNKNOWN');
    const post = await reg.fetch('/v2/push/x/blobs/uploads/', { method: 'POST' });
    const location = post.headers.get('location')!;
    assert.equal((await reg.fetch(location, { method: 'PATCH', body: 'abc' })).status, 202);
    assert.equal((await reg.fetch(location, { method: 'DELETE' })).status, 204);
    await expectError(await reg.fetch(location), 404, 'BLOB_UPLOAD_UNKNOWN');
    // A session belongs to its repository.
    const other = (await reg.fetch('/v2/push/y/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
    await expectError(await reg.fetch(other.replace('/push/y/', '/push/x/')), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('mounts a blob across repositories, and falls back to an upload when the source lacks it', async () => {
    const digest = await pushBlob(reg, 'mount/src', Buffer.from('shared layer'));
    const mounted = await reg.fetch(`/v2/mount/dst/blobs/uploads/?mount=${digest}&from=mount/src`, { method: 'POST' });
    assert.equal(mounted.status, 201);
    assert.equal(mounted.headers.get('location'), `/v2/mount/dst/blobs/${digest}`);
    assert.equal(mounted.headers.get('docker-content-digest'), digest);
    assert.equal((await reg.fetch(`/v2/mount/dst/blobs/${digest}`, { method: 'HEAD' })).status, 200);
    const fallback = await reg.fetch(`/v2/mount/dst2/blobs/uploads/?mount=${digest}&from=mount/nowhere`, { method: 'POST' });
    assert.equal(fallback.status, 202);
    assert.ok(fallback.headers.get('docker-upload-uuid'));
    assert.equal((await reg.fetch(`/v2/mount/dst2/blobs/${digest}`, { method: 'HEAD' })).status, 404);
  });

  it('stores manifests by tag and digest with their media types (OCI and Docker schema2)', async () => {
    for (const type of [OCI_MANIFEST, DOCKER_MANIFEST]) {
      const img = await pushSmallImage(reg, 'man/img', type === OCI_MANIFEST ? 'oci' : 'docker', type, type);
      for (const ref of [type === OCI_MANIFEST ? 'oci' : 'docker', img.digest]) {
        const get = await reg.fetch(`/v2/man/img/manifests/${ref}`, { headers: { Accept: `${OCI_MANIFEST}, ${DOCKER_MANIFEST}` } });
        assert.equal(get.status, 200);
        assert.equal(get.headers.get('content-type'), type);
        assert.equal(get.headers.get('docker-content-digest'), img.digest);
        assert.deepEqual(Buffer.from(await get.arrayBuffer()), img.bytes);
        const head = await reg.fetch(`/v2/man/img/manifests/${ref}`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('content-length'), String(img.bytes.length));
        assert.equal(head.headers.get('docker-content-digest'), img.digest);
      }
    }
    await expectError(await reg.fetch('/v2/man/img/manifests/nosuchtag'), 404, 'MANIFEST_UNKNOWN');
    await expectError(await reg.fetch(`/v2/man/img/manifests/${sha256('nothing')}`), 404, 'MANIFEST_UNKNOWN');
    await expectError(await reg.fetch('/v2/man/img/manifests/sha256:xyz'), 400, 'DIGEST_INVALID');
  });

  it('stores an OCI index and a Docker manifest list whose children are in the repository', async () => {
    const a = await pushSmallImage(reg, 'man/list', 'a', 'a', DOCKER_MANIFEST);
    const b = await pushSmallImage(reg, 'man/list', 'b', 'b', DOCKER_MANIFEST);
    for (const type of [OCI_INDEX, DOCKER_LIST]) {
      const list = {
        schemaVersion: 2, mediaType: type,
        manifests: [
          { mediaType: DOCKER_MANIFEST, digest: a.digest, size: a.bytes.length, platform: { architecture: 'amd64', os: 'linux' } },
          { mediaType: DOCKER_MANIFEST, digest: b.digest, size: b.bytes.length, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      };
      const { digest } = await pushManifest(reg, 'man/list', type === OCI_INDEX ? 'index' : 'list', list, type);
      const get = await reg.fetch(`/v2/man/list/manifests/${type === OCI_INDEX ? 'index' : 'list'}`);
      assert.equal(get.headers.get('content-type'), type);
      assert.equal(get.headers.get('docker-content-digest'), digest);
      await get.body?.cancel();
    }
    const missing = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha256('absent'), size: 10 }] };
    await expectError(await reg.fetch('/v2/man/list/manifests/broken', { method: 'PUT', body: JSON.stringify(missing), headers: { 'Content-Type': OCI_INDEX } }), 400, 'MANIFEST_BLOB_UNKNOWN');
  });

  it('refuses bad manifests: missing blobs, invalid JSON, a wrong digest, oversize — and keeps nothing', async () => {
    const before = treeOf(reg.root);
    const layer = sha256('never uploaded');
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: layer, size: 2 }, layers: [] });
    const res = await reg.fetch('/v2/man/bad/manifests/v1', { method: 'PUT', body: manifest, headers: { 'Content-Type': OCI_MANIFEST } });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { errors: { code: string; detail: { digest: string } }[] };
    assert.equal(body.errors[0].code, 'MANIFEST_BLOB_UNKNOWN');
    assert.equal(body.errors[0].detail.digest, layer);
    await expectError(await reg.fetch('/v2/man/bad/manifests/v1', { method: 'PUT', body: '{"schemaVersion": 2, ', headers: { 'Content-Type': OCI_MANIFEST } }), 400, 'MANIFEST_INVALID');
    await expectError(await reg.fetch('/v2/man/bad/manifests/v1', { method: 'PUT', body: '{"schemaVersion": 1}', headers: { 'Content-Type': OCI_MANIFEST } }), 400, 'MANIFEST_INVALID');
    await expectError(await reg.fetch('/v2/man/bad/manifests/v1', { method: 'PUT', body: JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: {}, layers: [] }), headers: { 'Content-Type': OCI_MANIFEST } }), 400, 'MANIFEST_INVALID');
    const empty = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    await expectError(await reg.fetch(`/v2/man/bad/manifests/${sha256('not this')}`, { method: 'PUT', body: empty, headers: { 'Content-Type': OCI_INDEX } }), 400, 'DIGEST_INVALID');
    const huge = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], annotations: { pad: 'x'.repeat(4 << 20) } });
    const big = await reg.fetch('/v2/man/bad/manifests/huge', { method: 'PUT', body: huge, headers: { 'Content-Type': OCI_INDEX } });
    assert.equal(big.status, 413);
    assert.equal(await errorCode(big), 'SIZE_INVALID');
    await expectError(await reg.fetch('/v2/man/bad/manifests/-bad-tag', { method: 'PUT', body: empty, headers: { 'Content-Type': OCI_INDEX } }), 400, 'MANIFEST_INVALID');
    assert.deepEqual(treeOf(reg.root).filter((p) => !p.includes('_uploads')), before.filter((p) => !p.includes('_uploads')), 'nothing stored by a refused manifest');
    await expectError(await reg.fetch('/v2/man/bad/tags/list'), 404, 'NAME_UNKNOWN');
  });

  it('refuses repository names that break the grammar (NAME_INVALID) and writes nothing outside the root', async () => {
    const parent = join(TMP, 'api');
    const outside = readdirSync(TMP).sort();
    for (const name of ['Upper/case', 'a/../../escape', '..', '../..', 'a//b', 'a/-b', 'a_', '_a', 'a/b/', 'a%2F..%2Fb', 'a..b', 'a/./b']) {
      // Raw paths: fetch would normalise the dot segments away before they reached the server.
      const res = await rawRequest(reg, 'POST', `/v2/${name}/blobs/uploads/?digest=${sha256('x')}`, 'x');
      assert.equal(res.status, 400, `${name}: ${res.status}`);
      assert.equal(res.json.errors[0].code, 'NAME_INVALID', name);
      const get = await rawRequest(reg, 'GET', `/v2/${name}/manifests/latest`);
      assert.equal(get.json.errors[0].code, 'NAME_INVALID', name);
    }
    await expectError(await reg.fetch(`/v2/${'a'.repeat(256)}/tags/list`), 400, 'NAME_INVALID');
    assert.deepEqual(readdirSync(TMP).sort(), outside);
    assert.ok(!existsSync(join(parent, '..', 'escape')));
  });

  it('lists tags with n/last pagination and a Link header', async () => {
    for (const tag of ['c', 'a', 'b', 'd']) await pushSmallImage(reg, 'disc/tags', tag, tag);
    const all = await reg.fetch('/v2/disc/tags/tags/list');
    assert.deepEqual(await all.json(), { name: 'disc/tags', tags: ['a', 'b', 'c', 'd'] });
    const page1 = await reg.fetch('/v2/disc/tags/tags/list?n=2');
    assert.deepEqual(((await page1.json()) as { tags: string[] }).tags, ['a', 'b']);
    const link = page1.headers.get('link')!;
    assert.equal(link, '</v2/disc/tags/tags/list?n=2&last=b>; rel="next"');
    const page2 = await reg.fetch(/<([^>]+)>/.exec(link)![1]);
    assert.deepEqual(((await page2.json()) as { tags: string[] }).tags, ['c', 'd']);
    assert.equal(page2.headers.get('link'), null);
    const after = await reg.fetch('/v2/disc/tags/tags/list?last=c');
    assert.deepEqual(((await after.json()) as { tags: string[] }).tags, ['d']);
    const zero = await reg.fetch('/v2/disc/tags/tags/list?n=0');
    assert.deepEqual(((await zero.json()) as { tags: string[] }).tags, []);
    await expectError(await reg.fetch('/v2/disc/nothing/tags/list'), 404, 'NAME_UNKNOWN');
  });

  it('lists the catalog with pagination, and finds repositories through /v1/search', async () => {
    await pushSmallImage(reg, 'disc/cat/one', 'v', '1');
    await pushSmallImage(reg, 'disc/cat/two', 'v', '2');
    const all = (await (await reg.fetch('/v2/_catalog')).json()) as { repositories: string[] };
    assert.ok(all.repositories.includes('disc/cat/one') && all.repositories.includes('disc/cat/two'));
    assert.deepEqual(all.repositories, [...all.repositories].sort());
    const page = await reg.fetch('/v2/_catalog?n=1&last=disc/cat/one');
    assert.deepEqual(await page.json(), { repositories: ['disc/cat/two'] });
    assert.match(page.headers.get('link') ?? '', /^<\/v2\/_catalog\?n=1&last=disc%2Fcat%2Ftwo>; rel="next"$/);
    const search = (await (await reg.fetch('/v1/search?q=cat&n=10')).json()) as { num_results: number; query: string; results: { name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }[] };
    assert.equal(search.query, 'cat');
    assert.equal(search.num_results, 2);
    assert.deepEqual(search.results.map((r) => r.name), ['disc/cat/one', 'disc/cat/two']);
    assert.deepEqual(Object.keys(search.results[0]).sort(), ['description', 'is_automated', 'is_official', 'name', 'star_count']);
  });

  it('serves the referrers API with an artifactType filter and answers OCI-Subject', async () => {
    const img = await pushSmallImage(reg, 'refs/img', 'v1', 'refs');
    const emptyConfig = await pushBlob(reg, 'refs/img', Buffer.from('{}'));
    const artifact = (type: string, n: string) => ({
      schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: type,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyConfig, size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyConfig, size: 2 }],
      subject: { mediaType: OCI_MANIFEST, digest: img.digest, size: img.bytes.length },
      annotations: { n },
    });
    const sbom = artifact('application/spdx+json', '1');
    const sig = artifact('application/vnd.dev.cosign.signature', '2');
    const sbomPut = await pushManifest(reg, 'refs/img', sha256(JSON.stringify(sbom)), sbom);
    assert.equal(sbomPut.res.headers.get('oci-subject'), img.digest);
    const sigPut = await pushManifest(reg, 'refs/img', sha256(JSON.stringify(sig)), sig);
    const all = await reg.fetch(`/v2/refs/img/referrers/${img.digest}`);
    assert.equal(all.status, 200);
    assert.equal(all.headers.get('content-type'), OCI_INDEX);
    assert.equal(all.headers.get('oci-filters-applied'), null);
    const index = (await all.json()) as { schemaVersion: number; mediaType: string; manifests: { digest: string; artifactType: string; size: number; annotations: Record<string, string> }[] };
    assert.equal(index.schemaVersion, 2);
    assert.equal(index.mediaType, OCI_INDEX);
    assert.deepEqual(index.manifests.map((m) => m.digest).sort(), [sbomPut.digest, sigPut.digest].sort());
    assert.equal(index.manifests.find((m) => m.digest === sbomPut.digest)!.artifactType, 'application/spdx+json');
    assert.deepEqual(index.manifests.find((m) => m.digest === sbomPut.digest)!.annotations, { n: '1' });
    const filtered = await reg.fetch(`/v2/refs/img/referrers/${img.digest}?artifactType=application/spdx%2Bjson`);
    assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
    assert.deepEqual(((await filtered.json()) as { manifests: { digest: string }[] }).manifests.map((m) => m.digest), [sbomPut.digest]);
    const none = (await (await reg.fetch(`/v2/refs/img/referrers/${sha256('no subject')}`)).json()) as { manifests: unknown[] };
    assert.deepEqual(none.manifests, []);
    await expectError(await reg.fetch('/v2/refs/img/referrers/sha256:nothex'), 400, 'DIGEST_INVALID');
    // Deleting a referrer takes it out of the list.
    assert.equal((await reg.fetch(`/v2/refs/img/manifests/${sigPut.digest}`, { method: 'DELETE' })).status, 202);
    const left = (await (await reg.fetch(`/v2/refs/img/referrers/${img.digest}`)).json()) as { manifests: { digest: string }[] };
    assert.deepEqual(left.manifests.map((m) => m.digest), [sbomPut.digest]);
  });

  it('deletes tags, manifests and blobs', async () => {
    const img = await pushSmallImage(reg, 'del/img', 'v1', 'del');
    await pushManifest(reg, 'del/img', 'v2', JSON.parse(img.bytes.toString()));
    assert.equal((await reg.fetch('/v2/del/img/manifests/v1', { method: 'DELETE' })).status, 202);
    await expectError(await reg.fetch('/v2/del/img/manifests/v1'), 404, 'MANIFEST_UNKNOWN');
    assert.equal((await reg.fetch('/v2/del/img/manifests/v2', { method: 'HEAD' })).status, 200, 'the other tag stays');
    assert.equal((await reg.fetch(`/v2/del/img/manifests/${img.digest}`, { method: 'DELETE' })).status, 202);
    await expectError(await reg.fetch(`/v2/del/img/manifests/${img.digest}`), 404, 'MANIFEST_UNKNOWN');
    await expectError(await reg.fetch('/v2/del/img/manifests/v2'), 404, 'MANIFEST_UNKNOWN');
    assert.deepEqual(((await (await reg.fetch('/v2/del/img/tags/list')).json()) as { tags: string[] }).tags, []);
    await expectError(await reg.fetch(`/v2/del/img/manifests/${img.digest}`, { method: 'DELETE' }), 404, 'MANIFEST_UNKNOWN');
    const del = await reg.fetch(`/v2/del/img/blobs/${img.layer}`, { method: 'DELETE' });
    assert.equal(del.status, 202);
    assert.equal(del.headers.get('docker-content-digest'), img.layer);
    await expectError(await reg.fetch(`/v2/del/img/blobs/${img.layer}`), 404, 'BLOB_UNKNOWN');
    await expectError(await reg.fetch(`/v2/del/img/blobs/${img.layer}`, { method: 'DELETE' }), 404, 'BLOB_UNKNOWN');
  });

  it('answers UNSUPPORTED for a method a route does not have', async () => {
    await expectError(await reg.fetch(`/v2/some/repo/blobs/${sha256('x')}`, { method: 'PUT', body: 'x' }), 405, 'UNSUPPORTED');
    await expectError(await reg.fetch('/v2/some/repo/tags/list', { method: 'DELETE' }), 405, 'UNSUPPORTED');
    await expectError(await reg.fetch('/v2/_catalog', { method: 'POST' }), 405, 'UNSUPPORTED');
    await expectError(await reg.fetch('/v2/some/repo/nothing/here'), 404, 'UNSUPPORTED');
    await expectError(await reg.fetch('/elsewhere'), 404, 'UNSUPPORTED');
  });
});

describe('registry serve: clients', () => {
  let reg: Registry;
  let amd64: ReturnType<typeof busyboxLayout>;
  let arm64: ReturnType<typeof busyboxLayout>;
  before(async () => {
    reg = await Registry.start(join(TMP, 'clients'));
    amd64 = busyboxLayout(join(TMP, 'layout-amd64'), 'amd64');
    arm64 = busyboxLayout(join(TMP, 'layout-arm64'), 'arm64');
  });
  after(async () => {
    assert.equal(await reg.stop(), 0);
  });

  it('skopeo copies an image in and back out with the same digests; inspect and list-tags agree', () => {
    skopeoOk(['copy', '--dest-tls-verify=false', `oci:${join(TMP, 'layout-amd64')}:latest`, `docker://${reg.host}/library/busybox:amd64`]);
    skopeoOk(['copy', '--dest-tls-verify=false', `oci:${join(TMP, 'layout-arm64')}:latest`, `docker://${reg.host}/library/busybox:arm64`]);
    const inspect = JSON.parse(skopeoOk(['inspect', '--tls-verify=false', `docker://${reg.host}/library/busybox:amd64`])) as { Digest: string; Architecture: string; Layers: string[] };
    assert.equal(inspect.Digest, amd64.manifest);
    assert.equal(inspect.Architecture, 'amd64');
    assert.deepEqual(inspect.Layers, [amd64.layer]);
    const tags = JSON.parse(skopeoOk(['list-tags', '--tls-verify=false', `docker://${reg.host}/library/busybox`])) as { Tags: string[] };
    assert.deepEqual(tags.Tags.sort(), ['amd64', 'arm64']);
    const out = join(TMP, 'copied-out');
    skopeoOk(['copy', '--src-tls-verify=false', `docker://${reg.host}/library/busybox:amd64`, `oci:${out}:back`]);
    const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0].digest, amd64.manifest);
    assert.deepEqual(readFileSync(join(out, 'blobs', 'sha256', amd64.layer.slice(7))), amd64.layerBytes);
  });

  it('the docker CLI inspects a manifest, and creates and pushes a two-platform list', () => {
    const env = { DOCKER_CONFIG: join(TMP, 'docker-config'), DOCKER_HOST: `unix://${join(TMP, 'no-daemon.sock')}` };
    const inspect = run(DOCKER, ['manifest', 'inspect', '--insecure', `${reg.host}/library/busybox:amd64`], { env });
    assert.equal(inspect.code, 0, inspect.stderr);
    const m = JSON.parse(inspect.stdout) as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(m.config.digest, amd64.config);
    assert.equal(m.layers[0].digest, amd64.layer);
    const list = `${reg.host}/multi/busybox:latest`;
    const create = run(DOCKER, ['manifest', 'create', '--insecure', list, `${reg.host}/library/busybox:amd64`, `${reg.host}/library/busybox:arm64`], { env });
    assert.equal(create.code, 0, create.stderr);
    const push = run(DOCKER, ['manifest', 'push', '--insecure', list], { env });
    assert.equal(push.code, 0, push.stderr);
    const pushed = push.stdout.trim().split('\n').pop()!;
    assert.match(pushed, /^sha256:[0-9a-f]{64}$/);
    const raw = skopeoOk(['inspect', '--raw', '--tls-verify=false', `docker://${list}`]);
    assert.equal(sha256(raw), pushed, 'the list is served under the digest docker printed');
    const doc = JSON.parse(raw) as { mediaType: string; manifests: { digest: string; platform: { architecture: string } }[] };
    // docker writes an OCI index over OCI manifests, a manifest list over schema2 ones.
    assert.equal(doc.mediaType, OCI_INDEX);
    assert.deepEqual(doc.manifests.map((x) => [x.platform.architecture, x.digest]).sort(), [['amd64', amd64.manifest], ['arm64', arm64.manifest]]);
    const back = run(DOCKER, ['manifest', 'inspect', '--insecure', list], { env: { ...env, DOCKER_CONFIG: join(TMP, 'docker-config-2') } });
    assert.equal(back.code, 0, back.stderr);
    assert.equal((JSON.parse(back.stdout) as { manifests: unknown[] }).manifests.length, 2);
    // The arm64 image is pullable through the list by platform.
    const armOut = join(TMP, 'arm-out');
    skopeoOk(['copy', '--src-tls-verify=false', '--override-arch', 'arm64', `docker://${list}`, `oci:${armOut}:x`]);
    assert.equal((JSON.parse(readFileSync(join(armOut, 'index.json'), 'utf8')) as { manifests: { digest: string }[] }).manifests[0].digest, arm64.manifest);
  });

  it('skopeo delete removes a manifest by digest', () => {
    skopeoOk(['copy', '--dest-tls-verify=false', `oci:${join(TMP, 'layout-amd64')}:latest`, `docker://${reg.host}/todelete/busybox:v1`]);
    skopeoOk(['delete', '--tls-verify=false', `docker://${reg.host}/todelete/busybox@${amd64.manifest}`]);
    const r = skopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/todelete/busybox:v1`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /manifest unknown/i);
  });
});

describe('registry serve: auth and TLS', () => {
  const htpasswd = join(TMP, 'htpasswd');
  before(() => {
    const r = run('htpasswd', ['-Bbc', htpasswd, 'alice', 's3cret']);
    assert.equal(r.code, 0, r.stderr);
    if (!existsSync(join(TMP, 'layout-amd64', 'index.json'))) busyboxLayout(join(TMP, 'layout-amd64'), 'amd64');
  });

  it('htpasswd: no or wrong credentials get 401 UNAUTHORIZED with a Basic challenge; right ones pass', async () => {
    const reg = await Registry.start(join(TMP, 'basic'), ['--htpasswd', htpasswd]);
    try {
      const none = await reg.fetch('/v2/');
      assert.equal(none.status, 401);
      assert.equal(none.headers.get('www-authenticate'), 'Basic realm="berth-registry"');
      assert.equal(await errorCode(none), 'UNAUTHORIZED');
      const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
      await expectError(await reg.fetch('/v2/', { headers: basic('alice', 'wrong') }), 401, 'UNAUTHORIZED');
      await expectError(await reg.fetch('/v2/_catalog', { headers: basic('mallory', 's3cret') }), 401, 'UNAUTHORIZED');
      assert.equal((await reg.fetch('/v2/', { headers: basic('alice', 's3cret') })).status, 200);
      const digest = await pushBlob(reg, 'auth/repo', Buffer.from('auth blob'), basic('alice', 's3cret').Authorization);
      await expectError(await reg.fetch(`/v2/auth/repo/blobs/${digest}`), 401, 'UNAUTHORIZED');
      // skopeo with credentials, and without.
      skopeoOk(['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret', `oci:${join(TMP, 'layout-amd64')}:latest`, `docker://${reg.host}/auth/busybox:v1`]);
      const denied = skopeo(['inspect', '--tls-verify=false', '--creds', 'alice:nope', `docker://${reg.host}/auth/busybox:v1`]);
      assert.notEqual(denied.code, 0);
      assert.match(denied.stderr, /unauthorized|authentication required/i);
      // Guessing is cut short: after ten failures, TOOMANYREQUESTS, even for the right password.
      for (let i = 0; i < 10; i++) await (await reg.fetch('/v2/', { headers: basic('alice', `guess${i}`) })).body?.cancel();
      const throttled = await reg.fetch('/v2/', { headers: basic('alice', 's3cret') });
      assert.equal(throttled.status, 429);
      assert.ok(Number(throttled.headers.get('retry-after')) > 0);
      assert.equal(await errorCode(throttled), 'TOOMANYREQUESTS');
    } finally {
      await reg.stop();
    }
  });

  it('token mode: a Bearer challenge, tokens from /token, scoped access, and a skopeo round trip', async () => {
    const reg = await Registry.start(join(TMP, 'token'), ['--htpasswd', htpasswd, '--auth', 'token']);
    try {
      const res = await reg.fetch('/v2/tok/repo/tags/list');
      assert.equal(res.status, 401);
      const challenge = res.headers.get('www-authenticate')!;
      assert.equal(challenge, `Bearer realm="http://${reg.host}/token",service="berth-registry",scope="repository:tok/repo:pull"`);
      assert.equal(await errorCode(res), 'UNAUTHORIZED');
      const noCreds = await reg.fetch('/token?service=berth-registry&scope=repository:tok/repo:pull');
      assert.equal(noCreds.status, 401);
      await noCreds.body?.cancel();
      const basic = `Basic ${Buffer.from('alice:s3cret').toString('base64')}`;
      const bad = await reg.fetch('/token?service=berth-registry', { headers: { Authorization: `Basic ${Buffer.from('alice:x').toString('base64')}` } });
      assert.equal(bad.status, 401);
      await bad.body?.cancel();
      const tok = (await (await reg.fetch('/token?service=berth-registry&scope=repository:tok/repo:pull,push', { headers: { Authorization: basic } })).json()) as { token: string; access_token: string; expires_in: number };
      assert.ok(tok.token && tok.access_token === tok.token && tok.expires_in > 0);
      const bearer = { Authorization: `Bearer ${tok.token}` };
      assert.equal((await reg.fetch('/v2/', { headers: bearer })).status, 200);
      const digest = await pushBlob(reg, 'tok/repo', Buffer.from('token blob'), bearer.Authorization);
      assert.equal((await reg.fetch(`/v2/tok/repo/blobs/${digest}`, { headers: bearer })).status, 200);
      const other = await reg.fetch(`/v2/tok/other/blobs/${digest}`, { headers: bearer });
      assert.equal(other.status, 401, 'the token is scoped to its repository');
      assert.match(other.headers.get('www-authenticate')!, /error="insufficient_scope"/);
      await other.body?.cancel();
      assert.equal(statSync(join(reg.root, 'auth', 'token-secret')).mode & 0o777, 0o600, 'the signing key is private');
      await reg.restart();
      assert.equal((await reg.fetch(`/v2/tok/repo/blobs/${digest}`, { headers: bearer })).status, 200, 'a token outlives a restart: the key is per root');
      const forged = `${tok.token.slice(0, -4)}AAAA`;
      await expectError(await reg.fetch('/v2/', { headers: { Authorization: `Bearer ${forged}` } }), 401, 'UNAUTHORIZED');
      const form = await reg.fetch('/token', { method: 'POST', body: new URLSearchParams({ grant_type: 'password', username: 'alice', password: 's3cret', service: 'berth-registry', scope: 'repository:tok/repo:pull', client_id: 'test' }) });
      assert.equal(form.status, 200);
      assert.ok(((await form.json()) as { access_token: string }).access_token);
      skopeoOk(['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret', `oci:${join(TMP, 'layout-amd64')}:latest`, `docker://${reg.host}/tok/busybox:v1`]);
      const inspect = JSON.parse(skopeoOk(['inspect', '--tls-verify=false', '--creds', 'alice:s3cret', `docker://${reg.host}/tok/busybox:v1`])) as { Digest: string };
      assert.equal(inspect.Digest, sha256(readFileSync(join(TMP, 'layout-amd64', 'blobs', 'sha256', inspect.Digest.slice(7)))));
      const wrong = skopeo(['inspect', '--tls-verify=false', '--creds', 'alice:wrong', `docker://${reg.host}/tok/busybox:v1`]);
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /unauthorized|401/i);
    } finally {
      await reg.stop();
    }
  });

  it('serves HTTPS with --tls-cert and --tls-key', async () => {
    const cert = join(TMP, 'cert.pem');
    const key = join(TMP, 'key.pem');
    const r = run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']);
    assert.equal(r.code, 0, r.stderr);
    const reg = await Registry.start(join(TMP, 'tls'), ['--tls-cert', cert, '--tls-key', key]);
    try {
      assert.equal(reg.scheme, 'https');
      const { status, headers } = await new Promise<{ status: number; headers: Record<string, unknown> }>((resolve, reject) => {
        httpsRequest(`${reg.url}/v2/`, { ca: readFileSync(cert) }, (res) => {
          res.resume();
          resolve({ status: res.statusCode!, headers: res.headers });
        }).on('error', reject).end();
      });
      assert.equal(status, 200);
      assert.equal(headers['docker-distribution-api-version'], 'registry/2.0');
      skopeoOk(['copy', '--dest-tls-verify=false', `oci:${join(TMP, 'layout-amd64')}:latest`, `docker://${reg.host}/tls/busybox:v1`]);
      const inspect = JSON.parse(skopeoOk(['inspect', '--tls-verify=false', `docker://${reg.host}/tls/busybox:v1`])) as { Architecture: string };
      assert.equal(inspect.Architecture, 'amd64');
    } finally {
      await reg.stop();
    }
  });

  it('docker login through berthd accepts the right password and refuses a wrong one', async () => {
    const reg = await Registry.start(join(TMP, 'login'), ['--htpasswd', htpasswd]);
    const d = await TestDaemon.start();
    try {
      const env = { DOCKER_CONFIG: join(TMP, 'login-docker-config') };
      const ok = d.docker(['login', reg.host, '-u', 'alice', '--password-stdin'], { input: 's3cret\n', env });
      assert.equal(ok.code, 0, `${ok.stderr}\n${d.log.slice(-2000)}`);
      assert.match(ok.stdout, /Login Succeeded/);
      const cfg = JSON.parse(readFileSync(join(env.DOCKER_CONFIG, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
      assert.equal(Buffer.from(cfg.auths[reg.host].auth, 'base64').toString(), 'alice:s3cret');
      const bad = d.docker(['login', reg.host, '-u', 'alice', '--password-stdin'], { input: 'nope\n', env: { DOCKER_CONFIG: join(TMP, 'login-docker-config-2') } });
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /unauthorized/i);
    } finally {
      await d.cleanup();
      await reg.stop();
    }
  });
});

describe('registry serve: the docker CLI through berthd', () => {
  let reg: Registry;
  let d: TestDaemon;
  before(async () => {
    reg = await Registry.start(join(TMP, 'berthd'));
    d = await TestDaemon.start();
  });
  after(async () => {
    await d.cleanup();
    await reg.stop();
  });

  it('pushes an image and pulls it back by tag and by digest, with the digest the registry serves', async () => {
    importBusybox(d);
    const ref = `${reg.host}/lib/busybox:v1`;
    assert.equal(d.docker(['tag', 'busybox', ref]).code, 0);
    const push = d.docker(['push', ref]);
    assert.equal(push.code, 0, push.stderr);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)![1];
    const head = await reg.fetch('/v2/lib/busybox/manifests/v1', { method: 'HEAD', headers: { Accept: `${OCI_MANIFEST}, ${DOCKER_MANIFEST}` } });
    assert.equal(head.headers.get('docker-content-digest'), digest);
    assert.equal(d.docker(['rmi', ref, 'busybox']).code, 0);
    const byTag = d.docker(['pull', ref]);
    assert.equal(byTag.code, 0, byTag.stderr);
    assert.match(byTag.stdout, new RegExp(`Digest: ${digest}`));
    const byDigest = d.docker(['pull', `${reg.host}/lib/busybox@${digest}`]);
    assert.equal(byDigest.code, 0, byDigest.stderr);
    const run1 = d.docker(['run', '--rm', '--network', 'none', `${reg.host}/lib/busybox@${digest}`, 'echo', 'pulled']);
    assert.equal(run1.code, 0, run1.stderr);
    assert.equal(run1.stdout.trim(), 'pulled');
  });

  it('docker search and berth search find repositories through the registry\'s /v1/search', () => {
    for (const cli of [(a: string[]) => d.docker(a), (a: string[]) => d.berth(a)]) {
      const r = cli(['search', `${reg.host}/busybox`]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.stdout.trim().split('\n').slice(1).map((l) => l.split(/\s+/)[0]), ['lib/busybox']);
    }
    const none = d.docker(['search', `${reg.host}/nothing-like-it`]);
    assert.equal(none.code, 0);
    assert.equal(none.stdout.trim().split('\n').length, 1, 'only the header');
  });

  it('pulls the arm64 image out of a two-platform list and runs it', () => {
    const amd64 = busyboxLayout(join(TMP, 'bd-amd64'), 'amd64');
    const arm64 = busyboxLayout(join(TMP, 'bd-arm64'), 'arm64');
    skopeoOk(['copy', '--dest-tls-verify=false', `oci:${join(TMP, 'bd-amd64')}:latest`, `docker://${reg.host}/plat/busybox:amd64`]);
    skopeoOk(['copy', '--dest-tls-verify=false', `oci:${join(TMP, 'bd-arm64')}:latest`, `docker://${reg.host}/plat/busybox:arm64`]);
    const env = { DOCKER_CONFIG: join(TMP, 'plat-docker-config') };
    const list = `${reg.host}/plat/multi:latest`;
    assert.equal(run(DOCKER, ['manifest', 'create', '--insecure', list, `${reg.host}/plat/busybox:amd64`, `${reg.host}/plat/busybox:arm64`], { env }).code, 0);
    assert.equal(run(DOCKER, ['manifest', 'push', '--insecure', list], { env }).code, 0);
    const pull = d.docker(['pull', '--platform', 'linux/arm64', list]);
    assert.equal(pull.code, 0, pull.stderr);
    const uname = d.docker(['run', '--rm', '--network', 'none', '--platform', 'linux/arm64', list, 'uname', '-m']);
    assert.equal(uname.code, 0, uname.stderr);
    assert.equal(uname.stdout.trim(), 'aarch64');
    const inspect = d.docker(['image', 'inspect', '--format', '{{.Architecture}}', list]);
    assert.equal(inspect.stdout.trim(), 'arm64');
    const armDigest = JSON.parse(skopeoOk(['inspect', '--raw', '--tls-verify=false', `docker://${list}`])) as { manifests: { digest: string; platform: { architecture: string } }[] };
    assert.deepEqual(armDigest.manifests.map((m) => m.digest).sort(), [amd64.manifest, arm64.manifest].sort());
  });
});

describe('registry serve: crash safety', () => {
  it('kill -9 in the middle of a chunked upload: the blob is absent after restart, and the upload can be redone', async () => {
    const reg = await Registry.start(join(TMP, 'crash'));
    const data = randomBytes(4 << 20);
    const digest = sha256(data);
    const post = await reg.fetch('/v2/crash/blob/blobs/uploads/', { method: 'POST' });
    const location = post.headers.get('location')!;
    const first = await reg.fetch(location, { method: 'PATCH', body: data.subarray(0, 1 << 20), headers: { 'Content-Range': `0-${(1 << 20) - 1}` } });
    assert.equal(first.status, 202);
    // The second chunk is half sent when the server dies.
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${reg.url}${location}`, { method: 'PATCH', headers: { 'Content-Range': `${1 << 20}-${(3 << 20) - 1}`, 'Content-Length': String(2 << 20) } });
      req.on('error', () => resolve());
      req.write(data.subarray(1 << 20, (1 << 20) + (512 << 10)), () => {
        setTimeout(() => void reg.kill9().then(() => req.destroy()), 200);
      });
    });
    await reg.restart();
    assert.equal((await reg.fetch(`/v2/crash/blob/blobs/${digest}`, { method: 'HEAD' })).status, 404, 'no half blob');
    await expectError(await reg.fetch(`/v2/crash/blob/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    // The old session reports what reached the disk, or is gone; either way, it never becomes the blob.
    const status = await reg.fetch(location);
    assert.ok(status.status === 204 || status.status === 404);
    if (status.status === 204) {
      const end = Number(/^0-(\d+)$/.exec(status.headers.get('range')!)![1]);
      assert.ok(end >= (1 << 20) - 1 && end < 3 << 20);
      await expectError(await reg.fetch(`${location}?digest=${digest}`, { method: 'PUT' }), 400, 'DIGEST_INVALID');
    }
    // A new chunked upload completes.
    const again = await reg.fetch('/v2/crash/blob/blobs/uploads/', { method: 'POST' });
    let loc = again.headers.get('location')!;
    for (let off = 0; off < data.length; off += 1 << 20) {
      const r = await reg.fetch(loc, { method: 'PATCH', body: data.subarray(off, off + (1 << 20)), headers: { 'Content-Range': `${off}-${off + (1 << 20) - 1}` } });
      assert.equal(r.status, 202);
      loc = r.headers.get('location')!;
    }
    assert.equal((await reg.fetch(`${loc}?digest=${digest}`, { method: 'PUT' })).status, 201);
    const get = await reg.fetch(`/v2/crash/blob/blobs/${digest}`);
    assert.equal(sha256(Buffer.from(await get.arrayBuffer())), digest);
    assert.equal(await reg.stop(), 0);
  });
});

describe('registry serve: memory under load', () => {
  it('16 concurrent 16 MiB uploads and 48 concurrent downloads keep the server under 300 MiB, every byte right', async () => {
    const reg = await Registry.start(join(TMP, 'load'));
    try {
      const hwm = () => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${reg.proc.pid}/status`, 'utf8'))![1]) / 1024;
      const blobs = Array.from({ length: 16 }, () => randomBytes(16 << 20));
      await Promise.all(blobs.map((b, i) => pushBlob(reg, `load/r${i}`, b)));
      const get = (i: number) => new Promise<string>((resolve, reject) => {
        httpRequest({ host: '127.0.0.1', port: reg.port, path: `/v2/load/r${i % 16}/blobs/${sha256(blobs[i % 16])}`, agent: false }, (res) => {
          const h = createHash('sha256');
          res.on('data', (c) => h.update(c)).on('end', () => resolve(`sha256:${h.digest('hex')}`));
        }).on('error', reject).end();
      });
      const got = await Promise.all(Array.from({ length: 48 }, (_, i) => get(i)));
      got.forEach((g, i) => assert.equal(g, sha256(blobs[i % 16])));
      assert.ok(hwm() < 300, `peak RSS ${hwm().toFixed(0)} MiB`);
    } finally {
      await reg.stop();
    }
  });
});

describe('registry gc', () => {
  it('after a manifest is deleted, --dry-run lists its unique blobs and removes nothing; gc removes them; shared blobs stay', async () => {
    const root = join(TMP, 'gc');
    const reg = await Registry.start(root);
    const a = await pushSmallImage(reg, 'gc/a', 'v1', 'shared');
    // The same image in a second repository: its blobs are shared.
    for (const d of [a.layer, a.config]) assert.equal((await reg.fetch(`/v2/gc/c/blobs/uploads/?mount=${d}&from=gc/a`, { method: 'POST' })).status, 201);
    await pushManifest(reg, 'gc/c', 'v1', JSON.parse(a.bytes.toString()));
    const b = await pushSmallImage(reg, 'gc/b', 'v1', 'unique');
    // An index over b keeps b alive while it exists.
    const list = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: b.digest, size: b.bytes.length }] };
    const idx = await pushManifest(reg, 'gc/b', 'list', list, OCI_INDEX);
    assert.equal((await reg.fetch('/v2/gc/b/manifests/v1', { method: 'DELETE' })).status, 202);
    assert.equal(await reg.stop(), 0);

    const gc = (args: string[]) => run(BERTH, ['registry', 'gc', '--root', root, ...args]);
    const kept = gc(['--dry-run']);
    assert.equal(kept.code, 0, kept.stderr);
    assert.match(kept.stdout, /0 manifests and 0 blobs \(0 bytes\) would be removed/, 'b is still reachable from the index');

    await reg.restart();
    assert.equal((await reg.fetch(`/v2/gc/a/manifests/${a.digest}`, { method: 'DELETE' })).status, 202);
    assert.equal((await reg.fetch(`/v2/gc/b/manifests/${idx.digest}`, { method: 'DELETE' })).status, 202);
    assert.equal((await reg.fetch(`/v2/gc/b/manifests/${b.digest}`, { method: 'DELETE' })).status, 202);
    assert.equal(await reg.stop(), 0);

    const blobFiles = () => readdirSync(join(root, 'blobs', 'sha256')).sort();
    const beforeDry = blobFiles();
    const dry = gc(['--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    const listed = [...dry.stdout.matchAll(/would remove blob (sha256:[0-9a-f]{64})/g)].map((m) => m[1]).sort();
    assert.deepEqual(listed, [b.digest, b.config, b.layer, idx.digest].sort(), dry.stdout);
    assert.deepEqual(blobFiles(), beforeDry, 'a dry run removes nothing');

    const real = gc([]);
    assert.equal(real.code, 0, real.stderr);
    assert.deepEqual([...real.stdout.matchAll(/removed blob (sha256:[0-9a-f]{64})/g)].map((m) => m[1]).sort(), listed);
    assert.deepEqual(blobFiles(), beforeDry.filter((h) => !listed.includes(`sha256:${h}`)));
    for (const d of [a.digest, a.config, a.layer]) assert.ok(blobFiles().includes(d.slice(7)), `shared ${d} stays`);

    // Served read-only afterwards: the shared image is whole, the swept blob is gone, writes are DENIED.
    const ro = await Registry.start(root, ['--read-only']);
    try {
      const get = await ro.fetch(`/v2/gc/c/manifests/v1`);
      assert.equal(get.headers.get('docker-content-digest'), a.digest);
      await get.body?.cancel();
      assert.equal((await ro.fetch(`/v2/gc/c/blobs/${a.layer}`, { method: 'HEAD' })).status, 200);
      await expectError(await ro.fetch(`/v2/gc/b/blobs/${b.layer}`), 404, 'BLOB_UNKNOWN');
      await expectError(await ro.fetch(`/v2/gc/c/blobs/uploads/`, { method: 'POST' }), 403, 'DENIED');
      await expectError(await ro.fetch(`/v2/gc/c/manifests/v1`, { method: 'DELETE' }), 403, 'DENIED');
      assert.equal(gc(['--dry-run']).stdout.trim(), '0 manifests and 0 blobs (0 bytes) would be removed');
    } finally {
      await ro.stop();
    }
  });

  it('--delete-untagged removes manifests no tag reaches, but keeps index children and referrers of tagged ones', async () => {
    const root = join(TMP, 'gc-untagged');
    const reg = await Registry.start(root);
    const child = await pushSmallImage(reg, 'u/repo', 'tmp', 'child');
    const list = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: child.digest, size: child.bytes.length }] };
    const idx = await pushManifest(reg, 'u/repo', 'v1', list, OCI_INDEX);
    const sigConfig = await pushBlob(reg, 'u/repo', Buffer.from('{}'));
    const sig = { schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/example', config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: sigConfig, size: 2 }, layers: [], subject: { mediaType: OCI_INDEX, digest: idx.digest, size: JSON.stringify(list).length } };
    const sigPut = await pushManifest(reg, 'u/repo', sha256(JSON.stringify(sig)), sig);
    const orphan = await pushSmallImage(reg, 'u/repo', 'gone', 'orphan');
    assert.equal((await reg.fetch('/v2/u/repo/manifests/tmp', { method: 'DELETE' })).status, 202);
    assert.equal((await reg.fetch('/v2/u/repo/manifests/gone', { method: 'DELETE' })).status, 202);
    assert.equal(await reg.stop(), 0);
    const r = run(BERTH, ['registry', 'gc', '--root', root, '--delete-untagged']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual([...r.stdout.matchAll(/removed manifest u\/repo@(sha256:[0-9a-f]{64})/g)].map((m) => m[1]), [orphan.digest]);
    const removed = [...r.stdout.matchAll(/removed blob (sha256:[0-9a-f]{64})/g)].map((m) => m[1]).sort();
    assert.deepEqual(removed, [orphan.digest, orphan.config, orphan.layer].sort());
    await reg.restart();
    try {
      for (const d of [child.digest, sigPut.digest, idx.digest]) assert.equal((await reg.fetch(`/v2/u/repo/manifests/${d}`, { method: 'HEAD' })).status, 200, d);
    } finally {
      await reg.stop();
    }
  });
});

describe('registry serve: command line', () => {
  it('refuses bad flags with exit 125 and a clear message', () => {
    const cases: [string[], RegExp][] = [
      [['--listen', 'nonsense'], /invalid --listen address "nonsense"/],
      [['--auth', 'token'], /--auth token needs --htpasswd FILE/],
      [['--auth', 'magic'], /invalid --auth "magic"/],
      [['--tls-cert', '/x'], /--tls-cert and --tls-key go together/],
      [['--bogus'], /unknown flag: --bogus/],
    ];
    for (const [args, re] of cases) {
      const r = run(BERTH, ['registry', 'serve', '--root', join(TMP, 'flags'), ...args]);
      assert.equal(r.code, 125, args.join(' '));
      assert.match(r.stderr, re);
    }
  });

  it('refuses an htpasswd file with non-bcrypt entries', () => {
    const file = join(TMP, 'md5.htpasswd');
    assert.equal(run('htpasswd', ['-mbc', file, 'bob', 'pw']).code, 0);
    const r = run(BERTH, ['registry', 'serve', '--root', join(TMP, 'flags'), '--listen', '127.0.0.1:0', '--htpasswd', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not a bcrypt entry \(make one with htpasswd -B\)/);
  });

  it('--workers 2: sessions continue on whichever worker takes the next connection, and SIGTERM stops them all', async () => {
    const reg = await Registry.start(join(TMP, 'workers'), ['--workers', '2']);
    const children = readFileSync(`/proc/${reg.proc.pid}/task/${reg.proc.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(children.length, 2);
    // Each request on a fresh connection, so the kernel spreads them over both workers.
    const once = (method: string, path: string, body?: Buffer, headers: Record<string, string> = {}) => new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: reg.port, method, path, agent: false, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c)).on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end(body);
    });
    const data = randomBytes(64 << 10);
    const post = await once('POST', '/v2/w/blob/blobs/uploads/');
    const location = post.headers.location as string;
    for (let off = 0; off < data.length; off += 8 << 10) {
      const r = await once('PATCH', location, data.subarray(off, off + (8 << 10)), { 'Content-Range': `${off}-${off + (8 << 10) - 1}` });
      assert.equal(r.status, 202);
    }
    assert.equal((await once('PUT', `${location}?digest=${sha256(data)}`)).status, 201);
    for (let i = 0; i < 8; i++) assert.equal(sha256((await once('GET', `/v2/w/blob/blobs/${sha256(data)}`)).body), sha256(data));
    assert.equal(await reg.stop(), 0);
    for (const pid of children) assert.ok(!existsSync(`/proc/${pid}`), `worker ${pid} stopped`);
  });

  it('says so when the port is taken', async () => {
    const reg = await Registry.start(join(TMP, 'port'));
    try {
      const r = run(BERTH, ['registry', 'serve', '--root', join(TMP, 'port2'), '--listen', reg.host]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /address already in use/);
    } finally {
      await reg.stop();
    }
  });
});
