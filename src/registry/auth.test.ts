import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Authenticator, Htpasswd, parseScopes } from './auth.ts';
import { bcryptHash } from './bcrypt.ts';
import { RegistryError } from './errors.ts';

const users = new Htpasswd(new Map([['alice', bcryptHash('pw', 4)]]));
const req = (authorization?: string) => ({ headers: { authorization, host: '127.0.0.1:5000' }, socket: { remoteAddress: '127.0.0.1' } }) as unknown as IncomingMessage;
const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
const pull = { type: 'repository', name: 'a/b', actions: ['pull'] };

describe('registry auth', () => {
  it('parses scopes', () => {
    assert.deepEqual(parseScopes(['repository:a/b:pull,push registry:catalog:*', 'bad']), [
      { type: 'repository', name: 'a/b', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ]);
  });

  it('issues tokens that open exactly their scopes, and refuses forged or foreign ones', () => {
    const auth = new Authenticator('token', users, randomBytes(32));
    const issued = auth.issueToken(req(basic('alice', 'pw')), new URLSearchParams('service=berth-registry&scope=repository:a/b:pull'), undefined);
    assert.equal(issued.status, 200);
    const token = (issued.body as { token: string }).token;
    auth.check(req(`Bearer ${token}`), pull);
    assert.throws(() => auth.check(req(`Bearer ${token}`), { ...pull, actions: ['push'] }), (e) => e instanceof RegistryError && e.code === 'UNAUTHORIZED' && /insufficient_scope/.test(e.headers['WWW-Authenticate']));
    const other = new Authenticator('token', users, randomBytes(32));
    assert.throws(() => other.check(req(`Bearer ${token}`), pull), (e) => e instanceof RegistryError && /invalid_token/.test(e.headers['WWW-Authenticate']));
    assert.equal(auth.issueToken(req(basic('alice', 'nope')), new URLSearchParams(), undefined).status, 401);
  });

  it('throttles a client after ten wrong passwords', () => {
    const auth = new Authenticator('htpasswd', users, Buffer.alloc(0));
    auth.check(req(basic('alice', 'pw')), pull);
    for (let i = 0; i < 10; i++) assert.throws(() => auth.check(req(basic('alice', 'x')), pull), (e) => e instanceof RegistryError && e.code === 'UNAUTHORIZED');
    assert.throws(() => auth.check(req(basic('alice', 'pw')), pull), (e) => e instanceof RegistryError && e.code === 'TOOMANYREQUESTS' && e.status === 429);
  });

  it('loads bcrypt htpasswd files and names the first line that is not bcrypt', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-htpasswd-'));
    writeFileSync(join(dir, 'ok'), `# users\nalice:${bcryptHash('pw', 4)}\n\n`);
    assert.equal((await Htpasswd.load(join(dir, 'ok'))).verify('alice', 'pw'), true);
    writeFileSync(join(dir, 'bad'), `alice:${bcryptHash('pw', 4)}\nbob:$apr1$x$y\n`);
    await assert.rejects(Htpasswd.load(join(dir, 'bad')), /bad:2: not a bcrypt entry/);
  });
});
