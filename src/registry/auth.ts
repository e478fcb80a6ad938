// Who may do what. Three modes:
//   none      every request is allowed (the default, for loopback and trusted networks);
//   htpasswd  HTTP Basic on every request, checked against bcrypt entries (`htpasswd -B`);
//   token     the registry is its own token service: `/token` checks Basic credentials against the
//             same file and issues a short-lived Bearer token, HMAC-signed with a per-root secret and
//             scoped to the repositories and actions asked for; /v2 requests carry that token.
// Passwords and tokens never reach a log line or an error message.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { bcryptVerify } from './bcrypt.ts';
import { type RegistryError, registryError } from './errors.ts';

export type AuthMode = 'none' | 'htpasswd' | 'token';

/** One grant, in the token's `access` claim and the challenge's `scope`: `repository:library/busybox:pull,push`. */
export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export const REALM = 'berth-registry';
export const SERVICE = 'berth-registry';
/** Bearer tokens live this long; clients fetch a new one when it runs out. */
export const TOKEN_TTL_S = 300;
/** A successful bcrypt check is remembered this long, so Basic clients pay bcrypt once, not per request. */
const VERIFIED_TTL_MS = 60_000;
/** Wrong credentials allowed per client address and window before it gets TOOMANYREQUESTS: no password guessing at bcrypt speed. */
export const FAILURE_LIMIT = 10;
const FAILURE_WINDOW_MS = 60_000;

/** Counts failed logins per client address in a fixed window. */
class FailureThrottle {
  #byClient = new Map<string, { count: number; until: number }>();

  /** Throws TOOMANYREQUESTS while the client is over its limit. */
  check(client: string): void {
    const f = this.#byClient.get(client);
    if (!f) return;
    const now = Date.now();
    if (f.until <= now) {
      this.#byClient.delete(client);
      return;
    }
    if (f.count >= FAILURE_LIMIT) {
      throw registryError('TOOMANYREQUESTS', 'too many failed authentication attempts; try again later', {
        headers: { 'Retry-After': String(Math.ceil((f.until - now) / 1000)) },
      });
    }
  }

  fail(client: string): void {
    const now = Date.now();
    const f = this.#byClient.get(client);
    if (f && f.until > now) f.count++;
    else {
      if (this.#byClient.size > 10_000) this.#byClient.clear();
      this.#byClient.set(client, { count: 1, until: now + FAILURE_WINDOW_MS });
    }
  }
}

export class Htpasswd {
  #users: Map<string, string>;
  #verified = new Map<string, number>();

  constructor(users: Map<string, string>) {
    this.#users = users;
  }

  /** Reads an htpasswd file; only bcrypt entries are accepted, with the line of the first other one named. */
  static async load(file: string): Promise<Htpasswd> {
    const text = await readFile(file, 'utf8');
    const users = new Map<string, string>();
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const at = line.indexOf(':');
      const hash = line.slice(at + 1);
      if (at <= 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) throw new Error(`${file}:${i + 1}: not a bcrypt entry (make one with htpasswd -B)`);
      users.set(line.slice(0, at), hash);
    });
    return new Htpasswd(users);
  }

  verify(user: string, password: string): boolean {
    const hash = this.#users.get(user);
    if (!hash) return false;
    const key = createHash('sha256').update(`${user}\0${password}\0${hash}`).digest('base64');
    const until = this.#verified.get(key);
    if (until && until > Date.now()) return true;
    if (!bcryptVerify(password, hash)) return false;
    if (this.#verified.size > 10_000) this.#verified.clear();
    this.#verified.set(key, Date.now() + VERIFIED_TTL_MS);
    return true;
  }
}

/** `Authorization: Basic …` as user and password, or undefined. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1], 'base64').toString('utf8');
  const at = text.indexOf(':');
  if (at < 0) return undefined;
  return { user: text.slice(0, at), password: text.slice(at + 1) };
}

/** Parses `scope` values: `repository:name:pull,push` (names hold no colons; a port never reaches here). */
export function parseScopes(scopes: string[]): Access[] {
  const out: Access[] = [];
  for (const scope of scopes.flatMap((s) => s.split(' ')).filter(Boolean)) {
    const first = scope.indexOf(':');
    const last = scope.lastIndexOf(':');
    if (first <= 0 || last === first) continue;
    out.push({ type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) });
  }
  return out;
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export class Authenticator {
  readonly mode: AuthMode;
  #htpasswd: Htpasswd | undefined;
  #secret: Buffer;
  #throttle = new FailureThrottle();

  constructor(mode: AuthMode, htpasswd: Htpasswd | undefined, secret: Buffer) {
    if (mode !== 'none' && !htpasswd) throw new Error(`auth mode ${mode} needs an htpasswd file`);
    this.mode = mode;
    this.#htpasswd = htpasswd;
    this.#secret = secret;
  }

  /**
   * Allows the request or throws UNAUTHORIZED with the challenge a client needs.
   * `needed` is undefined for the base endpoint, which any valid credential opens.
   */
  check(req: IncomingMessage, needed: Access | undefined): void {
    if (this.mode === 'none') return;
    const client = req.socket.remoteAddress ?? '';
    if (this.mode === 'htpasswd') {
      this.#throttle.check(client);
      const c = basicCredentials(req.headers.authorization);
      if (c && this.#htpasswd!.verify(c.user, c.password)) return;
      if (c) this.#throttle.fail(client);
      throw registryError('UNAUTHORIZED', c ? 'invalid username or password' : 'authentication required', {
        headers: { 'WWW-Authenticate': `Basic realm="${REALM}"` },
      });
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    const claims = m ? this.#verifyToken(m[1]) : undefined;
    if (claims && (!needed || allows(claims.access, needed))) return;
    let challenge = `Bearer realm="${this.#realmUrl(req)}",service="${SERVICE}"`;
    if (needed) challenge += `,scope="${needed.type}:${needed.name}:${needed.actions.join(',')}"`;
    if (claims) challenge += ',error="insufficient_scope"';
    else if (m) challenge += ',error="invalid_token"';
    throw registryError('UNAUTHORIZED', claims ? 'the token does not grant this access' : 'authentication required', { headers: { 'WWW-Authenticate': challenge } });
  }

  /** True when the request may do `needed` (used to decide whether a cross-repository mount may read its source). */
  allows(req: IncomingMessage, needed: Access): boolean {
    try {
      this.check(req, needed);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The `/token` endpoint: Basic credentials (GET) or an OAuth2 password grant (POST form),
   * answered with a token for the scopes asked. Every authenticated user gets what they ask:
   * htpasswd has no per-repository rules.
   */
  issueToken(req: IncomingMessage, query: URLSearchParams, form: URLSearchParams | undefined): { status: number; body: unknown; headers?: Record<string, string> } {
    if (this.mode !== 'token') return { status: 404, body: { errors: [{ code: 'UNSUPPORTED', message: 'this registry is not a token service' }] } };
    const client = req.socket.remoteAddress ?? '';
    try {
      this.#throttle.check(client);
    } catch (e) {
      const err = e as RegistryError;
      return { status: err.status, body: { errors: [{ code: err.code, message: err.message, detail: null }] }, headers: err.headers };
    }
    let creds = basicCredentials(req.headers.authorization);
    if (form) {
      if (form.get('grant_type') !== 'password') return { status: 400, body: { error: 'unsupported_grant_type' } };
      creds = { user: form.get('username') ?? '', password: form.get('password') ?? '' };
    }
    if (!creds || !this.#htpasswd!.verify(creds.user, creds.password)) {
      if (creds) this.#throttle.fail(client);
      return {
        status: 401,
        body: { errors: [{ code: 'UNAUTHORIZED', message: creds ? 'invalid username or password' : 'authentication required', detail: null }] },
        headers: { 'WWW-Authenticate': `Basic realm="${REALM}"` },
      };
    }
    const scopes = form ? [form.get('scope') ?? ''] : query.getAll('scope');
    const access = parseScopes(scopes).filter((a) => a.type === 'repository' || a.type === 'registry');
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: REALM, sub: creds.user, aud: query.get('service') ?? form?.get('service') ?? SERVICE, iat: now, nbf: now - 5, exp: now + TOKEN_TTL_S, jti: randomBytes(12).toString('hex'), access };
    const token = this.#sign(claims);
    return { status: 200, body: { token, access_token: token, expires_in: TOKEN_TTL_S, issued_at: new Date(now * 1000).toISOString() } };
  }

  #sign(claims: object): string {
    const head = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
    return `${head}.${b64url(createHmac('sha256', this.#secret).update(head).digest())}`;
  }

  #verifyToken(token: string): { access: Access[] } | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const want = createHmac('sha256', this.#secret).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
      const now = Date.now() / 1000;
      if (typeof claims.exp !== 'number' || claims.exp < now || (typeof claims.nbf === 'number' && claims.nbf > now)) return undefined;
      return { access: Array.isArray(claims.access) ? claims.access : [] };
    } catch {
      return undefined;
    }
  }

  #realmUrl(req: IncomingMessage): string {
    const tls = Boolean((req.socket as { encrypted?: boolean }).encrypted);
    const host = /^[A-Za-z0-9.:[\]-]+$/.test(req.headers.host ?? '') ? req.headers.host : '127.0.0.1';
    return `${tls ? 'https' : 'http'}://${host}/token`;
  }
}

function allows(granted: Access[], needed: Access): boolean {
  return needed.actions.every((action) =>
    granted.some((g) => g.type === needed.type && g.name === needed.name && (g.actions.includes(action) || g.actions.includes('*'))));
}
