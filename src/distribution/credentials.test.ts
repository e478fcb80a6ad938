import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CredentialStore, DOCKER_HUB_KEY, configKey, credentialsFromAuthConfig, decodeRegistryAuth, encodeRegistryAuth } from './credentials.ts';

test('X-Registry-Auth round-trips through base64url JSON, and an empty one means anonymous', () => {
  const creds = { username: 'alice', password: 'p+/ss=?~~~' };
  const header = encodeRegistryAuth(creds, '127.0.0.1:5000');
  assert.doesNotMatch(header, /[+/=]/, 'base64url, as the docker CLI sends');
  assert.deepEqual(JSON.parse(Buffer.from(header, 'base64url').toString()), { username: 'alice', password: 'p+/ss=?~~~', serveraddress: '127.0.0.1:5000' });
  assert.deepEqual(decodeRegistryAuth(header), creds);
  // Standard base64 with padding (older clients) decodes too.
  assert.deepEqual(decodeRegistryAuth(Buffer.from(JSON.stringify({ username: 'bob', password: 'x' })).toString('base64')), { username: 'bob', password: 'x' });
  assert.equal(decodeRegistryAuth(undefined), undefined);
  assert.equal(decodeRegistryAuth('e30='), undefined);
  assert.equal(decodeRegistryAuth('e30'), undefined);
  assert.equal(decodeRegistryAuth('!!!not base64 json'), undefined);
  assert.deepEqual(decodeRegistryAuth(encodeRegistryAuth({ identityToken: 'refresh-me' })), { identityToken: 'refresh-me' });
  assert.deepEqual(decodeRegistryAuth(encodeRegistryAuth({ registryToken: 'bearer-me' })), { registryToken: 'bearer-me' });
  // `auth` (base64 user:pass) stands in for username and password, as in config.json.
  assert.deepEqual(credentialsFromAuthConfig({ auth: Buffer.from('carol:a:b').toString('base64') }), { username: 'carol', password: 'a:b' });
  assert.deepEqual(credentialsFromAuthConfig({ Username: 'dave', Password: 'pw', ServerAddress: 'r:1' }), { username: 'dave', password: 'pw', serverAddress: 'r:1' });
});

test('Docker Hub is keyed by its legacy URL, other registries by host[:port]', () => {
  for (const s of [undefined, '', 'docker.io', 'index.docker.io', 'https://index.docker.io/v1/', 'registry-1.docker.io']) assert.equal(configKey(s), DOCKER_HUB_KEY);
  assert.equal(configKey('127.0.0.1:5000'), '127.0.0.1:5000');
  assert.equal(configKey('https://registry.example:5000/v2/'), 'registry.example:5000');
});

test('config.json auths: store, get and erase keep the other entries and settings', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-creds-'));
  try {
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ auths: { 'other:1': { auth: Buffer.from('o:p').toString('base64') } }, psFormat: 'x' }));
    const store = new CredentialStore(dir, {});
    await store.store('127.0.0.1:5000', { username: 'alice', password: 's3cret' });
    const file = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(file.auths['127.0.0.1:5000'], { auth: Buffer.from('alice:s3cret').toString('base64') });
    assert.equal(file.psFormat, 'x', 'settings the file had are kept');
    assert.equal(statSync(join(dir, 'config.json')).mode & 0o777, 0o600);
    assert.deepEqual(await store.get('127.0.0.1:5000'), { username: 'alice', password: 's3cret' });
    assert.deepEqual(await store.get('http://127.0.0.1:5000/v2/'), { username: 'alice', password: 's3cret' });
    assert.deepEqual(await store.get('other:1'), { username: 'o', password: 'p' });
    assert.equal(await store.get('nowhere:1'), undefined);
    await store.store('tok:1', { username: 'alice', identityToken: 'refresh' });
    assert.deepEqual(await store.get('tok:1'), { username: 'alice', identityToken: 'refresh' });
    assert.equal(await store.erase('127.0.0.1:5000'), true);
    assert.equal(await store.erase('127.0.0.1:5000'), false);
    assert.equal(await store.get('127.0.0.1:5000'), undefined);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).auths).sort(), ['other:1', 'tok:1']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a broken config.json is reported by path, and left as it was', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-creds-'));
  try {
    writeFileSync(join(dir, 'config.json'), '{"auths": ');
    const store = new CredentialStore(dir, {});
    await assert.rejects(store.store('r:1', { username: 'u', password: 'hunter2' }), (e: Error) => e.message.includes(join(dir, 'config.json')) && !e.message.includes('hunter2'));
    assert.equal(readFileSync(join(dir, 'config.json'), 'utf8'), '{"auths": ');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A docker-credential-test helper keeping its secrets in a JSON file, speaking the helper protocol. */
function credentialHelper(dir: string): { bin: string; db: string } {
  const bin = join(dir, 'bin');
  const db = join(dir, 'helper-db.json');
  const script = join(bin, 'docker-credential-test');
  mkdirSync(bin, { recursive: true });
  writeFileSync(script, `#!/bin/sh
# The credential-helper protocol: get/erase read a server URL, store reads JSON.
exec ${process.execPath} -e '
const fs = require("fs"); const db = ${JSON.stringify(db)};
const all = fs.existsSync(db) ? JSON.parse(fs.readFileSync(db, "utf8")) : {};
const input = fs.readFileSync(0, "utf8");
const action = process.argv[1];
if (action === "store") { const c = JSON.parse(input); all[c.ServerURL] = c; fs.writeFileSync(db, JSON.stringify(all)); }
else if (action === "get") { const c = all[input.trim()]; if (!c) { process.stdout.write("credentials not found in native keychain\\n"); process.exit(1); } process.stdout.write(JSON.stringify(c)); }
else if (action === "erase") { if (!all[input.trim()]) { process.stdout.write("credentials not found in native keychain\\n"); process.exit(1); } delete all[input.trim()]; fs.writeFileSync(db, JSON.stringify(all)); }
else process.exit(2);
' "$1"
`);
  chmodSync(script, 0o755);
  return { bin, db };
}

test('credsStore: secrets go to docker-credential-<name>, config.json keeps only an empty entry', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-creds-'));
  try {
    const { bin, db } = credentialHelper(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ credsStore: 'test' }));
    const store = new CredentialStore(dir, { PATH: `${bin}:${process.env.PATH}` });
    const r = await store.store('127.0.0.1:5000', { username: 'alice', password: 's3cret' });
    assert.equal(r.helper, 'test');
    const text = readFileSync(join(dir, 'config.json'), 'utf8');
    assert.doesNotMatch(text, /s3cret|YWxpY2U6czNjcmV0/, 'no secret in config.json');
    assert.deepEqual(JSON.parse(text).auths, { '127.0.0.1:5000': {} });
    assert.deepEqual(JSON.parse(readFileSync(db, 'utf8'))['127.0.0.1:5000'], { ServerURL: '127.0.0.1:5000', Username: 'alice', Secret: 's3cret' });
    assert.deepEqual(await store.get('127.0.0.1:5000'), { username: 'alice', password: 's3cret' });
    assert.equal(await store.get('127.0.0.1:5999'), undefined, '"credentials not found" is no error');
    await store.store('tok:1', { identityToken: 'refresh' });
    assert.deepEqual(await store.get('tok:1'), { identityToken: 'refresh' }, '<token> as the username means an identity token');
    assert.equal(await store.erase('127.0.0.1:5000'), true);
    assert.equal(await store.get('127.0.0.1:5000'), undefined);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).auths, { 'tok:1': {} });
    // credHelpers picks a helper per registry; a missing helper is a clear error without secrets.
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ credHelpers: { 'r:1': 'absent' } }));
    await assert.rejects(store.store('r:1', { username: 'u', password: 'hunter2' }), (e: Error) => /docker-credential-absent/.test(e.message) && !e.message.includes('hunter2'));
    assert.equal(await store.get('other:2'), undefined, 'registries without a helper read auths');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
