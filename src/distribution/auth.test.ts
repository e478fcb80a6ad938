// The auth flow and the client's HTTP behaviour against registries made up in this process, on
// 127.0.0.1: a token server, a registry that refuses tokens, storage behind a redirect.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http } from '../common/node-http.ts';
import { sha256 } from '../common/digest.ts';
import { parseReference } from '../images/reference.ts';
import { parseChallenges } from './auth.ts';
import { createRegistryClient, nextLink } from './client.ts';
import type { Credentials } from './types.ts';

type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

interface Fake {
  server: Server;
  host: string;
  url: string;
  hits: { method: string; path: string; auth?: string; body: string }[];
  handle: Handler;
}

async function fake(): Promise<Fake> {
  const f = { hits: [], handle: ((_q, res) => { res.writeHead(500); res.end(); }) as Handler } as unknown as Fake;
  f.server = http.createServer(async (req, res) => {
    const parts: Buffer[] = [];
    for await (const c of req) parts.push(c as Buffer);
    const body = Buffer.concat(parts);
    f.hits.push({ method: req.method!, path: req.url!, auth: req.headers.authorization, body: body.toString() });
    f.handle(req, res, body);
  });
  await new Promise<void>((r) => f.server.listen(0, '127.0.0.1', r));
  const port = (f.server.address() as { port: number }).port;
  f.host = `127.0.0.1:${port}`;
  f.url = `http://${f.host}`;
  return f;
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
};
const unauthorized = (res: ServerResponse, challenge: string) =>
  json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'authentication required', detail: null }] }, { 'WWW-Authenticate': challenge });

const SECRET = 'pa55-W0RD-never-shown';
const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256('{}'), size: 2 }, layers: [] }));

let registry: Fake;
let tokens: Fake;
let storage: Fake;
before(async () => {
  registry = await fake();
  tokens = await fake();
  storage = await fake();
});
after(() => {
  for (const f of [registry, tokens, storage]) f.server.close();
});
const reset = () => {
  for (const f of [registry, tokens, storage]) f.hits.length = 0;
};
const client = (creds?: Credentials) => createRegistryClient({ insecure: [], mirrors: [], credentials: () => creds });
const repoRef = () => parseReference(`${registry.host}/team/app:v1`);

/** A registry that wants Bearer tokens from `tokens`; `accept` decides which tokens it takes. */
function bearerRegistry(accept: (token: string) => boolean) {
  const challenge = (scope?: string) => `Bearer realm="${tokens.url}/token",service="fake-registry"${scope ? `,scope="${scope}"` : ''}`;
  registry.handle = (req, res) => {
    const auth = req.headers.authorization;
    const token = auth?.startsWith('Bearer ') ? auth.slice(7) : undefined;
    if (req.url === '/v2/') return token && accept(token) ? json(res, 200, {}) : unauthorized(res, challenge());
    if (!token || !accept(token)) return unauthorized(res, challenge('repository:team/app:pull'));
    if (req.url === '/v2/team/app/manifests/v1') {
      res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', 'Docker-Content-Digest': sha256(MANIFEST) });
      return res.end(MANIFEST);
    }
    json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown' }] });
  };
}

test('WWW-Authenticate: several challenges, quoted commas and escapes', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push", Basic realm="x\\"y"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'reg', scope: 'repository:a/b:pull,push' } },
    { scheme: 'basic', params: { realm: 'x"y' } },
  ]);
  assert.deepEqual(parseChallenges('basic realm=plain'), [{ scheme: 'basic', params: { realm: 'plain' } }]);
  assert.deepEqual(parseChallenges(undefined), []);
});

test('anonymous Bearer: a token for the repository scope, fetched once and reused', async () => {
  reset();
  bearerRegistry((t) => t === 'anon-token');
  tokens.handle = (req, res) => {
    const u = new URL(req.url!, tokens.url);
    assert.equal(req.headers.authorization, undefined, 'anonymous: no credentials sent');
    assert.equal(u.searchParams.get('service'), 'fake-registry');
    assert.deepEqual(u.searchParams.getAll('scope'), ['repository:team/app:pull']);
    json(res, 200, { token: 'anon-token', expires_in: 300 });
  };
  const repo = client().repository(repoRef(), ['pull']);
  const m = await repo.getManifest('v1');
  assert.equal(m.digest, sha256(MANIFEST));
  assert.equal(m.mediaType, 'application/vnd.oci.image.manifest.v1+json');
  await repo.getManifest('v1');
  assert.equal(tokens.hits.length, 1, 'the token is cached for its scope');
  assert.equal(registry.hits.filter((h) => h.path === '/v2/').length, 1, 'GET /v2/ is asked once per registry');
});

test('credentialed Bearer: Basic to the token server, and its refresh token becomes the identity token at login', async () => {
  reset();
  bearerRegistry((t) => t === 'alice-token');
  tokens.handle = (req, res) => {
    const u = new URL(req.url!, tokens.url);
    if (req.headers.authorization !== `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`) return json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] });
    json(res, 200, { access_token: 'alice-token', expires_in: 300, ...(u.searchParams.get('offline_token') === 'true' ? { refresh_token: 'alice-refresh' } : {}) });
  };
  const r = await client().login(registry.host, { username: 'alice', password: SECRET });
  assert.deepEqual(r, { status: 'Login Succeeded', identityToken: 'alice-refresh' });
  const m = await client({ username: 'alice', password: SECRET }).repository(repoRef(), ['pull']).getManifest('v1');
  assert.equal(m.digest, sha256(MANIFEST));
});

test('an identity token is exchanged with the token spec\'s POST form', async () => {
  reset();
  bearerRegistry((t) => t === 'from-refresh');
  tokens.handle = (req, res, body) => {
    assert.equal(req.method, 'POST');
    const form = new URLSearchParams(body.toString());
    assert.equal(form.get('grant_type'), 'refresh_token');
    assert.equal(form.get('refresh_token'), 'alice-refresh');
    assert.equal(form.get('service'), 'fake-registry');
    json(res, 200, { access_token: 'from-refresh' });
  };
  const m = await client({ identityToken: 'alice-refresh' }).repository(repoRef(), ['pull']).getManifest('v1');
  assert.equal(m.digest, sha256(MANIFEST));
});

test('wrong credentials: the token server\'s refusal, once, with no secret in the message', async () => {
  reset();
  bearerRegistry(() => false);
  tokens.handle = (_req, res) => json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] });
  const repo = client({ username: 'alice', password: SECRET }).repository(repoRef(), ['pull']);
  await assert.rejects(repo.getManifest('v1'), (e: Error & { code?: string }) => {
    assert.equal(e.message, 'unauthorized: incorrect username or password');
    assert.equal(e.code, 'Unauthorized');
    assert.ok(!JSON.stringify({ m: e.message, s: e.stack }).includes(SECRET));
    return true;
  });
  assert.equal(tokens.hits.length, 1);
  await assert.rejects(client().login(registry.host, { username: 'alice', password: SECRET }), (e: Error) => /^unauthorized: /.test(e.message) && !e.message.includes(SECRET));
});

test('a registry that refuses a fresh token: exactly one retry, then Docker\'s 401 text, and no token in it', async () => {
  reset();
  let n = 0;
  tokens.handle = (_req, res) => json(res, 200, { token: `issued-${++n}-${SECRET}` });
  bearerRegistry(() => false);
  // GET /v2/ must let the client learn the realm: it refuses too, so the flow starts from its challenge.
  const repo = client({ username: 'alice', password: SECRET }).repository(repoRef(), ['pull']);
  await assert.rejects(repo.getManifest('v1'), (e: Error & { code?: string }) => {
    assert.equal(e.message, 'unauthorized: authentication required');
    assert.equal(e.code, 'Unauthorized');
    assert.ok(!e.message.includes(SECRET) && !String(e.stack).includes(SECRET));
    return true;
  });
  const manifestGets = registry.hits.filter((h) => h.path.includes('/manifests/'));
  assert.equal(manifestGets.length, 2, 'the first try and one retry');
  assert.equal(tokens.hits.length, 2, 'one token, then one fresh token for the retry');
  assert.notEqual(manifestGets[0].auth, manifestGets[1].auth);
});

test('Basic auth: wrong credentials are refused without a retry and without the password', async () => {
  reset();
  registry.handle = (req, res) => {
    if (req.headers.authorization === `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`) return json(res, 404, { errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'v1' } }] });
    unauthorized(res, 'Basic realm="fake"');
  };
  const wrong = client({ username: 'alice', password: 'not-it' }).repository(repoRef(), ['pull']);
  await assert.rejects(wrong.getManifest('v1'), (e: Error) => e.message === 'unauthorized: authentication required' && !e.message.includes('not-it'));
  assert.equal(registry.hits.filter((h) => h.path.includes('/manifests/')).length, 1);
  const right = client({ username: 'alice', password: SECRET }).repository(repoRef(), ['pull']);
  await assert.rejects(right.getManifest('v1'), (e: Error & { code?: string }) => e.message === 'manifest unknown: manifest unknown' && e.code === 'NotFound');
  await assert.rejects(client().login(registry.host, { username: 'alice', password: 'not-it' }),
    (e: Error) => e.message === `login attempt to https://${registry.host}/v2/ failed with status: 401 Unauthorized` || e.message === `login attempt to http://${registry.host}/v2/ failed with status: 401 Unauthorized`);
});

test('blob GETs follow redirects to storage without our Authorization, and resume with Range', async () => {
  reset();
  const blob = Buffer.from('0123456789abcdefghij');
  const digest = sha256(blob);
  registry.handle = (req, res) => {
    if (req.headers.authorization !== `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`) return unauthorized(res, 'Basic realm="fake"');
    if (req.url === '/v2/') return json(res, 200, {});
    res.writeHead(307, { Location: `${storage.url}/signed/blob?sig=abc` });
    res.end();
  };
  storage.handle = (req, res) => {
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      const from = Number(m[1]);
      res.writeHead(206, { 'Content-Range': `bytes ${from}-${blob.length - 1}/${blob.length}`, 'Content-Length': String(blob.length - from) });
      return res.end(blob.subarray(from));
    }
    res.writeHead(200, { 'Content-Length': String(blob.length) });
    res.end(blob);
  };
  const repo = client({ username: 'alice', password: SECRET }).repository(repoRef(), ['pull']);
  const whole = await repo.getBlob(digest);
  assert.equal(whole.size, blob.length);
  assert.equal(Buffer.concat(await whole.stream.toArray()).toString(), blob.toString());
  const rest = await repo.getBlob(digest, 15);
  assert.equal(rest.size, blob.length, 'the whole blob\'s size');
  assert.equal(Buffer.concat(await rest.stream.toArray()).toString(), 'fghij');
  assert.ok(storage.hits.length === 2 && storage.hits.every((h) => h.auth === undefined), 'storage never saw our credentials');
  assert.equal(storage.hits[1].path, '/signed/blob?sig=abc');
});

test('a manifest fetched by digest is checked against it', async () => {
  reset();
  registry.handle = (req, res) => {
    if (req.url === '/v2/') return json(res, 200, {});
    res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
    res.end(Buffer.concat([MANIFEST, Buffer.from(' ')]));
  };
  const repo = client().repository(repoRef(), ['pull']);
  await assert.rejects(repo.getManifest(sha256(MANIFEST)), /manifest verification failed for digest sha256:/);
});

test('tags follow Link pagination; Docker\'s error texts for denied and unknown', async () => {
  reset();
  registry.handle = (req, res) => {
    if (req.url === '/v2/') return json(res, 200, {});
    if (req.url === '/v2/team/app/tags/list?n=1000') return json(res, 200, { name: 'team/app', tags: ['a', 'b'] }, { Link: '</v2/team/app/tags/list?last=b&n=1000>; rel="next"' });
    if (req.url === '/v2/team/app/tags/list?last=b&n=1000') return json(res, 200, { name: 'team/app', tags: ['c'] });
    if (req.url!.startsWith('/v2/team/app/manifests/')) return json(res, 403, { errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] });
    json(res, 404, {});
  };
  const repo = client().repository(repoRef(), ['pull']);
  assert.deepEqual(await repo.listTags(), ['a', 'b', 'c']);
  await assert.rejects(repo.getManifest('v1'), (e: Error & { code?: string }) => e.message === 'denied: requested access to the resource is denied' && e.code === 'Forbidden');
  assert.equal(nextLink('<https://r/v2/_catalog?last=x&n=2>; rel="next"', 'https://r/v2/_catalog'), 'https://r/v2/_catalog?last=x&n=2');
  assert.equal(nextLink(undefined, 'https://r/'), undefined);
});

test('a token is reused until its expires_in runs out, then fetched afresh', async (t) => {
  reset();
  let n = 0;
  tokens.handle = (_req, res) => json(res, 200, { token: `t-${++n}`, expires_in: 120 });
  bearerRegistry((tok) => tok.startsWith('t-'));
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  const repo = client().repository(repoRef(), ['pull']);
  await repo.getManifest('v1');
  t.mock.timers.tick(100_000);
  await repo.getManifest('v1');
  assert.equal(tokens.hits.length, 1, 'still fresh at 100 s');
  t.mock.timers.tick(30_000);
  await repo.getManifest('v1');
  assert.equal(tokens.hits.length, 2, 'expired at 130 s: a new token');
  const gets = registry.hits.filter((h) => h.path.includes('/manifests/'));
  assert.deepEqual(gets.map((h) => h.auth), ['Bearer t-1', 'Bearer t-1', 'Bearer t-2']);
});

test('an aborted operation stops its request', async () => {
  reset();
  registry.handle = (req, res) => {
    if (req.url === '/v2/') return json(res, 200, {});
    res.writeHead(200, { 'Content-Length': '1000000' });
    res.write(Buffer.alloc(1000)); // and then nothing more
  };
  const ac = new AbortController();
  const c = createRegistryClient({ insecure: [], mirrors: [], credentials: () => undefined, signal: ac.signal });
  const { stream } = await c.repository(repoRef(), ['pull']).getBlob(sha256('x'));
  const reading = stream.toArray();
  ac.abort();
  await assert.rejects(reading, (e: Error) => e.name === 'AbortError' || /aborted/.test(e.message));
});

test('a registry open at /v2/ but asking Basic for a repository gets the credentials once', async () => {
  reset();
  const basic = `Basic ${Buffer.from(`alice:${SECRET}`).toString('base64')}`;
  registry.handle = (req, res) => {
    if (req.url === '/v2/') return json(res, 200, {});
    if (req.headers.authorization !== basic) return unauthorized(res, 'Basic realm="fake"');
    res.writeHead(200, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
    res.end(MANIFEST);
  };
  assert.equal((await client({ username: 'alice', password: SECRET }).repository(repoRef(), ['pull']).getManifest('v1')).digest, sha256(MANIFEST));
  assert.deepEqual(registry.hits.filter((h) => h.path.includes('/manifests/')).map((h) => h.auth), [undefined, basic]);
  reset();
  await assert.rejects(client().repository(repoRef(), ['pull']).getManifest('v1'), (e: Error) => e.message === 'unauthorized: authentication required');
  assert.equal(registry.hits.filter((h) => h.path.includes('/manifests/')).length, 1, 'no credentials: nothing to retry with');
});
