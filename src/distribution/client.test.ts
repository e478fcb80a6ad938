// The client against the reference registry: Debian's docker-registry (distribution 2.8), started
// on 127.0.0.1 by the test, anonymous, with htpasswd Basic auth, and with token auth.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { TestRegistry, TokenServer } from '../../test/helpers/registry.ts';
import { type Digest, sha256 } from '../common/digest.ts';
import { MediaType } from '../images/oci.ts';
import { parseReference } from '../images/reference.ts';
import { createRegistryClient } from './client.ts';
import type { Credentials, Repository } from './types.ts';

const client = (creds?: Credentials) => createRegistryClient({ insecure: [], mirrors: [], credentials: () => creds });
const desc = (b: Buffer, mediaType: string = MediaType.OciLayer) => ({ mediaType, digest: sha256(b), size: b.length });

/** Pushes a one-layer image and returns its manifest bytes and digest. */
async function pushImage(repo: Repository, tag: string, layer: Buffer, chunkSize?: number) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  await repo.pushBlob(desc(config, MediaType.OciConfig), () => Readable.from([config]));
  await repo.pushBlob(desc(layer), () => Readable.from([layer]), chunkSize ? { chunkSize } : undefined);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: desc(config, MediaType.OciConfig), layers: [desc(layer)] }));
  const digest = await repo.putManifest(tag, manifest, MediaType.OciManifest);
  return { manifest, digest, config };
}

/** Matches an error's own message (assert.rejects with a RegExp would match the name too). */
const message = (re: RegExp) => (e: Error) => re.test(e.message);

async function readAll(s: Readable): Promise<Buffer> {
  return Buffer.concat(await s.toArray());
}

describe('registry client against docker-registry (anonymous)', () => {
  let reg: TestRegistry;
  before(async () => { reg = await TestRegistry.start(); });
  after(async () => { await reg.cleanup(); });

  test('push then pull round-trips manifest and blob digests; HEAD sees the same descriptor', async () => {
    const repo = client().repository(parseReference(`${reg.host}/team/app:v1`), ['pull', 'push']);
    const layer = randomBytes(300_000);
    const { manifest, digest } = await pushImage(repo, 'v1', layer);
    assert.equal(digest, sha256(manifest));
    assert.deepEqual(await repo.headManifest('v1'), { mediaType: MediaType.OciManifest, digest, size: manifest.length });
    const byTag = await repo.getManifest('v1');
    assert.ok(byTag.bytes.equals(manifest));
    assert.equal(byTag.digest, digest);
    assert.equal((await repo.getManifest(digest)).mediaType, MediaType.OciManifest);
    assert.equal(await repo.hasBlob(sha256(layer)), true);
    assert.equal(await repo.hasBlob(sha256('never pushed')), false);
    const { stream, size } = await repo.getBlob(sha256(layer));
    assert.equal(size, layer.length);
    assert.ok((await readAll(stream)).equals(layer));
    assert.equal(await repo.headManifest('nope'), undefined);
  });

  test('chunked uploads (POST, PATCH…, PUT ?digest=) commit the same blob, with progress', async () => {
    const repo = client().repository(parseReference(`${reg.host}/team/chunked:v1`), ['pull', 'push']);
    const layer = randomBytes(1_000_003);
    const seen: number[] = [];
    await repo.pushBlob(desc(layer), () => Readable.from([layer.subarray(0, 123_457), layer.subarray(123_457)]), { chunkSize: 256 * 1024, onProgress: (n) => seen.push(n) });
    assert.deepEqual(seen, [262144, 524288, 786432, 1000003]);
    const got = await readAll((await repo.getBlob(sha256(layer))).stream);
    assert.equal(createHash('sha256').update(got).digest('hex'), sha256(layer).slice(7));
  });

  test('an upload whose bytes do not match the digest is refused with the registry\'s words', async () => {
    const repo = client().repository(parseReference(`${reg.host}/team/bad:v1`), ['pull', 'push']);
    const claimed = { mediaType: MediaType.OciLayer, digest: sha256('something else') as Digest, size: 5 };
    await assert.rejects(repo.pushBlob(claimed, () => Readable.from([Buffer.from('hello')])), (e: Error & { code?: string }) => /^digest invalid: /.test(e.message) && e.code === 'InvalidArgument');
    assert.equal(await repo.hasBlob(claimed.digest), false);
  });

  test('getBlob from an offset resumes with Range', async () => {
    const repo = client().repository(parseReference(`${reg.host}/team/range:v1`), ['pull', 'push']);
    const layer = randomBytes(100_000);
    await repo.pushBlob(desc(layer), () => Readable.from([layer]));
    const { stream, size } = await repo.getBlob(sha256(layer), 60_000);
    assert.equal(size, layer.length);
    assert.ok((await readAll(stream)).equals(layer.subarray(60_000)));
  });

  test('cross-repository mount, tag list, _catalog and search over the catalog', async () => {
    const c = client();
    const src = c.repository(parseReference(`${reg.host}/team/src:v1`), ['pull', 'push']);
    const layer = randomBytes(50_000);
    await pushImage(src, 'v1', layer);
    await pushImage(src, 'v2', layer);
    const dst = c.repository(parseReference(`${reg.host}/other/dst:v1`), ['pull', 'push']);
    assert.equal(await dst.hasBlob(sha256(layer)), false);
    assert.equal(await dst.mountBlob(sha256(layer), 'team/src'), true);
    assert.equal(await dst.hasBlob(sha256(layer)), true);
    assert.equal(await dst.mountBlob(sha256('absent'), 'team/src'), false, 'no such blob: the registry opens an upload instead');
    assert.deepEqual((await src.listTags()).sort(), ['v1', 'v2']);
    const catalog = await c.catalog(reg.host);
    assert.ok(catalog.includes('team/src') && catalog.includes('team/app'), catalog.join(','));
    const found = await c.search(reg.host, 'src', 10) as { name: string }[];
    assert.deepEqual(found.map((r) => r.name), ['team/src']);
  });

  test('a manifest that names missing blobs, and a missing tag: Docker\'s texts', async () => {
    const repo = client().repository(parseReference(`${reg.host}/team/missing:v1`), ['pull', 'push']);
    const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: desc(Buffer.from('{}'), MediaType.OciConfig), layers: [] }));
    await assert.rejects(repo.putManifest('v1', m, MediaType.OciManifest), message(/^manifest blob unknown: /));
    await assert.rejects(repo.getManifest('v1'), (e: Error & { code?: string }) => e.message.startsWith('manifest unknown: ') && e.code === 'NotFound');
  });

  test('login to a registry without auth succeeds', async () => {
    assert.deepEqual(await client().login(reg.host, { username: 'x', password: 'y' }), { status: 'Login Succeeded' });
  });
});

describe('registry client against docker-registry with htpasswd (Basic)', () => {
  let reg: TestRegistry;
  before(async () => { reg = await TestRegistry.start({ users: { alice: 'correct horse' } }); });
  after(async () => { await reg.cleanup(); });

  test('the right credentials push and pull; none or wrong ones get Docker\'s 401 text without the password', async () => {
    const repo = client({ username: 'alice', password: 'correct horse' }).repository(parseReference(`${reg.host}/priv/app:v1`), ['pull', 'push']);
    const { digest } = await pushImage(repo, 'v1', randomBytes(1000));
    assert.equal((await repo.getManifest('v1')).digest, digest);
    await assert.rejects(client().repository(parseReference(`${reg.host}/priv/app:v1`), ['pull']).getManifest('v1'), message(/^unauthorized: authentication required$/));
    await assert.rejects(client({ username: 'alice', password: 'battery staple' }).repository(parseReference(`${reg.host}/priv/app:v1`), ['pull']).getManifest('v1'),
      (e: Error) => e.message === 'unauthorized: authentication required' && !String(e.stack).includes('battery staple'));
  });

  test('login checks the credentials as Docker does', async () => {
    assert.deepEqual(await client().login(reg.host, { username: 'alice', password: 'correct horse' }), { status: 'Login Succeeded' });
    await assert.rejects(client().login(reg.host, { username: 'alice', password: 'battery staple' }), (e: Error & { code?: string }) => {
      assert.equal(e.message, `login attempt to http://${reg.host}/v2/ failed with status: 401 Unauthorized`);
      assert.equal(e.code, 'Unauthorized');
      assert.ok(!String(e.stack).includes('battery staple'));
      return true;
    });
  });
});

describe('registry client against docker-registry with token auth (Bearer)', () => {
  let reg: TestRegistry;
  let tokens: TokenServer;
  before(async () => {
    tokens = await TokenServer.start({ bob: 's3cret-bob' });
    reg = await TestRegistry.start({ token: tokens.registryOptions });
  });
  after(async () => {
    await reg.cleanup();
    await tokens.cleanup();
  });

  test('a token per scope, fetched once for a whole push and pull', async () => {
    tokens.hits.length = 0;
    const repo = client({ username: 'bob', password: 's3cret-bob' }).repository(parseReference(`${reg.host}/bob/app:v1`), ['pull', 'push']);
    const { digest } = await pushImage(repo, 'v1', randomBytes(2000));
    assert.equal((await repo.getManifest(digest)).digest, digest);
    assert.deepEqual(tokens.hits, [{ authorized: true, scopes: ['repository:bob/app:pull,push'] }]);
  });

  test('login gets a token with the credentials; wrong ones are refused once, with no secret in the message', async () => {
    assert.deepEqual(await client().login(reg.host, { username: 'bob', password: 's3cret-bob' }), { status: 'Login Succeeded' });
    tokens.hits.length = 0;
    await assert.rejects(client().login(reg.host, { username: 'bob', password: 'wrong-pass' }), (e: Error & { code?: string }) => {
      assert.equal(e.message, 'unauthorized: incorrect username or password');
      assert.equal(e.code, 'Unauthorized');
      assert.ok(!String(e.stack).includes('wrong-pass'));
      return true;
    });
    assert.equal(tokens.hits.length, 1);
  });

  test('a token that does not grant the scope: one fresh token, one retry, then unauthorized', async () => {
    tokens.hits.length = 0;
    // An anonymous token carries no access: distribution refuses it.
    const repo = client().repository(parseReference(`${reg.host}/bob/app:v1`), ['pull']);
    await assert.rejects(repo.getManifest('v1'), message(/^unauthorized: authentication required$/));
    assert.equal(tokens.hits.length, 2, 'the first token and exactly one fresh one');
    const withWrong = client({ username: 'bob', password: 'wrong-pass' }).repository(parseReference(`${reg.host}/bob/app:v1`), ['pull']);
    tokens.hits.length = 0;
    await assert.rejects(withWrong.getManifest('v1'), (e: Error) => e.message === 'unauthorized: incorrect username or password' && !String(e.stack).includes('wrong-pass'));
    assert.equal(tokens.hits.length, 1, 'a refused token request is not repeated');
  });
});
