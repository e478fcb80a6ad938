// A private Debian `docker-registry` (distribution 2.8) on 127.0.0.1 for one test file, the
// reference a registry client is checked against. Nothing here ever leaves loopback.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { type KeyObject, X509Certificate, createPrivateKey, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer as createHttpServer } from 'node:http';
import { rm } from 'node:fs/promises';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';
export const SKOPEO = '/usr/bin/skopeo';

export interface RegistryStartOptions {
  /** Users allowed in with Basic auth (htpasswd, bcrypt); without, the registry is anonymous. */
  users?: Record<string, string>;
  /**
   * Bearer token auth instead: the registry sends clients to `realm` and accepts tokens signed
   * by `rootCertBundle`'s key, issued by `issuer` for `service` (see the token auth spec).
   */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
}

export class TestRegistry {
  readonly dir: string;
  readonly port: number;
  /** `127.0.0.1:PORT`, as references and config.json name it. */
  readonly host: string;
  readonly url: string;
  readonly users: Record<string, string>;
  proc: ChildProcess | undefined;
  log = '';

  private constructor(dir: string, port: number, users: Record<string, string>) {
    this.dir = dir;
    this.port = port;
    this.host = `127.0.0.1:${port}`;
    this.url = `http://${this.host}`;
    this.users = users;
  }

  /** Starts `docker-registry serve` on a free loopback port and waits until `/v2/` answers. */
  static async start(opts: RegistryStartOptions = {}): Promise<TestRegistry> {
    const dir = mkdtempSync(join(tmpdir(), 'berth-registry-'));
    const port = await freePort();
    const r = new TestRegistry(dir, port, opts.users ?? {});
    const lines = [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      `  secret: berth-test-${port}`,
    ];
    if (opts.users) {
      const htpasswd = join(dir, 'htpasswd');
      writeFileSync(htpasswd, Object.entries(opts.users).map(([u, p]) => htpasswdLine(u, p)).join(''));
      lines.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${htpasswd}`);
    } else if (opts.token) {
      const t = opts.token;
      lines.push('auth:', '  token:', `    realm: ${t.realm}`, `    service: ${t.service}`, `    issuer: ${t.issuer}`, `    rootcertbundle: ${t.rootCertBundle}`);
    }
    const config = join(dir, 'config.yml');
    writeFileSync(config, lines.join('\n') + '\n');
    const proc = spawn(DOCKER_REGISTRY, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    r.proc = proc;
    proc.stdout!.on('data', (c) => (r.log += c));
    proc.stderr!.on('data', (c) => (r.log += c));
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`docker-registry exited with ${proc.exitCode}:\n${r.log}`);
      if (await canConnect(port)) return r;
      await new Promise((res) => setTimeout(res, 50));
    }
    proc.kill('SIGKILL');
    throw new Error(`docker-registry did not start:\n${r.log}`);
  }

  /**
   * Copies an image archive (docker-archive or oci-archive, by `transport`) into this registry as
   * `repo:tag` with skopeo; returns the manifest digest skopeo wrote.
   */
  push(archive: string, repoTag: string, transport: 'docker-archive' | 'oci-archive' = 'docker-archive'): string {
    const digestFile = join(this.dir, `digest-${Date.now()}-${Math.random().toString(36).slice(2)}`);
    const args = ['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile];
    const [user] = Object.entries(this.users);
    if (user) args.push('--dest-creds', `${user[0]}:${user[1]}`);
    args.push(`${transport}:${archive}`, `docker://${this.host}/${repoTag}`);
    const res = spawnSync(SKOPEO, args, { encoding: 'utf8', timeout: 120_000, env: { ...process.env, REGISTRY_AUTH_FILE: join(this.dir, 'skopeo-auth.json') } });
    if (res.status !== 0) throw new Error(`skopeo copy to ${this.host}/${repoTag} failed: ${res.stderr}`);
    return spawnSync('cat', [digestFile], { encoding: 'utf8' }).stdout.trim();
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const done = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill('SIGTERM');
    await done;
  }

  async cleanup(): Promise<void> {
    await this.stop();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** One htpasswd line with a bcrypt hash, as distribution's htpasswd auth requires. */
export function htpasswdLine(user: string, password: string): string {
  const r = spawnSync('htpasswd', ['-Bbn', user, password], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
  return r.stdout.trim() + '\n';
}

/** A port nothing listens on now, on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * A token server (Docker's registry token auth spec) for a `docker-registry` started with
 * `token`: it signs ES256 JWTs with a throwaway self-signed certificate, granting what was asked
 * to the users it knows (Basic on GET) and nothing to anyone else. `hits` counts token requests.
 */
export class TokenServer {
  readonly dir: string;
  readonly service = 'berth-test-registry';
  readonly issuer = 'berth-test-issuer';
  readonly users: Record<string, string>;
  readonly hits: { authorized: boolean; scopes: string[] }[] = [];
  #server: Server | undefined;
  #key: KeyObject | undefined;
  #x5c = '';
  realm = '';

  constructor(users: Record<string, string>) {
    this.dir = mkdtempSync(join(tmpdir(), 'berth-token-'));
    this.users = users;
  }

  get certPath(): string {
    return join(this.dir, 'cert.pem');
  }

  /** The `token` options for TestRegistry.start. */
  get registryOptions(): NonNullable<RegistryStartOptions['token']> {
    return { realm: this.realm, service: this.service, issuer: this.issuer, rootCertBundle: this.certPath };
  }

  static async start(users: Record<string, string>): Promise<TokenServer> {
    const t = new TokenServer(users);
    const keyPath = join(t.dir, 'key.pem');
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyPath, '-out', t.certPath, '-days', '2', '-subj', '/CN=berth-test-token'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
    t.#key = createPrivateKey(readFileSync(keyPath));
    t.#x5c = new X509Certificate(readFileSync(t.certPath)).raw.toString('base64');
    t.#server = createHttpServer((req, res) => t.#answer(req, res));
    await new Promise<void>((res) => t.#server!.listen(0, '127.0.0.1', res));
    t.realm = `http://127.0.0.1:${(t.#server.address() as { port: number }).port}/token`;
    return t;
  }

  #answer(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    const scopes = url.searchParams.getAll('scope');
    let user: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const pair = Buffer.from(auth.slice(6), 'base64').toString();
      const i = pair.indexOf(':');
      const [u, p] = [pair.slice(0, i), pair.slice(i + 1)];
      if (this.users[u] === undefined || this.users[u] !== p) {
        this.hits.push({ authorized: false, scopes });
        res.writeHead(401, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'incorrect username or password' }] }));
        return;
      }
      user = u;
    }
    this.hits.push({ authorized: user !== undefined, scopes });
    const access = user === undefined ? [] : scopes.map((s) => {
      const [type, ...rest] = s.split(':');
      const actions = rest.pop()!.split(',');
      return { type, name: rest.join(':'), actions };
    });
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const head = b64({ typ: 'JWT', alg: 'ES256', x5c: [this.#x5c] });
    const claims = b64({ iss: this.issuer, sub: user ?? '', aud: this.service, exp: now + 300, nbf: now - 10, iat: now, jti: `${now}-${this.hits.length}`, access });
    const sig = sign('sha256', Buffer.from(`${head}.${claims}`), { key: this.#key!, dsaEncoding: 'ieee-p1363' }).toString('base64url');
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ token: `${head}.${claims}.${sig}`, expires_in: 300, issued_at: new Date().toISOString() }));
  }

  async cleanup(): Promise<void> {
    await new Promise<void>((res) => (this.#server ? this.#server.close(() => res()) : res()));
    await rm(this.dir, { recursive: true, force: true });
  }
}
