import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference } from '../images/reference.ts';
import { createRegistryClient } from './client.ts';
import { hostEndpoints, inCidr, isInsecureRegistry, resolveEndpoints } from './resolve.ts';

const none = { insecure: [], mirrors: [] };

test('docker.io references go to registry-1.docker.io with library/ for official images', () => {
  assert.deepEqual(resolveEndpoints(parseReference('busybox'), none), [
    { url: 'https://registry-1.docker.io', host: 'docker.io', repository: 'library/busybox', insecure: false, mirror: false },
  ]);
  assert.equal(resolveEndpoints(parseReference('index.docker.io/user/app:1'), none)[0].repository, 'user/app');
  assert.equal(resolveEndpoints(parseReference('docker.io/library/busybox'), none)[0].url, 'https://registry-1.docker.io');
});

test('mirrors come first for docker.io only, and a plain-http mirror is insecure', () => {
  const opts = { insecure: [], mirrors: ['https://mirror.example/', '127.0.0.1:5001', 'http://10.0.0.9:5000'] };
  const eps = resolveEndpoints(parseReference('busybox'), opts);
  assert.deepEqual(eps.map((e) => [e.url, e.mirror, e.insecure, e.repository]), [
    ['https://mirror.example', true, false, 'library/busybox'],
    ['https://127.0.0.1:5001', true, true, 'library/busybox'],
    ['http://10.0.0.9:5000', true, true, 'library/busybox'],
    ['https://registry-1.docker.io', false, false, 'library/busybox'],
  ]);
  assert.deepEqual(resolveEndpoints(parseReference('quay.io/a/b'), opts).map((e) => e.url), ['https://quay.io']);
});

test('loopback registries may fall back to plain HTTP, after HTTPS, as Docker does', () => {
  for (const host of ['localhost:5000', '127.0.0.1:5000', '127.8.9.1', '[::1]:5000']) {
    const eps = resolveEndpoints({ domain: host, path: 'a/b' }, none);
    assert.deepEqual(eps.map((e) => e.url), [`https://${host}`, `http://${host}`], host);
    assert.ok(eps.every((e) => e.insecure && e.repository === 'a/b'));
  }
  assert.deepEqual(hostEndpoints('registry.example:5000', none.insecure).map((e) => e.url), ['https://registry.example:5000']);
});

test('configured insecure registries match by host:port, bare host or CIDR (IP literals only)', () => {
  const insecure = ['registry.lan:5000', 'plain.lan', '10.1.0.0/16', 'fd00::/8'];
  assert.ok(isInsecureRegistry('registry.lan:5000', insecure));
  assert.ok(!isInsecureRegistry('registry.lan:5001', insecure));
  assert.ok(isInsecureRegistry('plain.lan:443', insecure));
  assert.ok(isInsecureRegistry('10.1.200.3:5000', insecure));
  assert.ok(!isInsecureRegistry('10.2.0.1:5000', insecure));
  assert.ok(isInsecureRegistry('[fd12::1]:5000', insecure));
  assert.ok(!isInsecureRegistry('example.com', insecure));
  assert.ok(!isInsecureRegistry('10.1.0.1.example.com', insecure), 'a name is never matched against a CIDR');
  assert.ok(inCidr('192.168.1.7', '192.168.1.0/24'));
  assert.ok(!inCidr('192.168.2.7', '192.168.1.0/24'));
  assert.ok(inCidr('::ffff:10.0.0.1', '::ffff:10.0.0.0/120'));
});

test('the client resolves docker.io without opening a connection', () => {
  let asked = 0;
  const c = createRegistryClient({ insecure: [], mirrors: [], credentials: () => { asked++; return undefined; } });
  const repo = c.repository(parseReference('busybox:latest'), ['pull']);
  assert.equal(repo.endpoint.url, 'https://registry-1.docker.io');
  assert.equal(repo.endpoint.repository, 'library/busybox');
  assert.equal(c.resolve(parseReference('alpine'))[0].host, 'docker.io');
  assert.equal(asked, 0, 'nothing was looked up or sent: a repository handle is lazy');
});

test('a push never goes to a mirror', () => {
  const c = createRegistryClient({ insecure: [], mirrors: ['https://mirror.example'], credentials: () => undefined });
  assert.equal(c.repository(parseReference('busybox'), ['pull']).endpoint.url, 'https://mirror.example');
  assert.equal(c.repository(parseReference('busybox'), ['pull', 'push']).endpoint.url, 'https://registry-1.docker.io');
});
