// The registry auth challenge flow: GET /v2/ (once per registry), read `WWW-Authenticate`, then
// answer with Basic credentials or a Bearer token from the realm (Docker's token auth spec:
// GET with Basic, or a POST form for a refresh token), cached per scope until it expires.
// Secrets stay in headers: no message, log line or error built here contains one.
import { ErrorCode } from '../common/errors.ts';
import { RegistryError, responseError, statusText } from './errors.ts';
import { type HttpResponse, discard, header, readBody, send } from './transport.ts';
import type { Credentials, Endpoint } from './types.ts';

export interface Challenge {
  /** Lower case: `basic`, `bearer`. */
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parses `WWW-Authenticate` (RFC 7235), which may hold several challenges joined by commas:
 * `Bearer realm="https://auth",service="reg",scope="repository:a:pull", Basic realm="x"`.
 */
export function parseChallenges(value: string | undefined): Challenge[] {
  const out: Challenge[] = [];
  if (!value) return out;
  let i = 0;
  const s = value;
  const skipWs = () => { while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++; };
  const token = () => {
    const start = i;
    while (i < s.length && /[!#$%&'*+.^_`|~0-9A-Za-z-]/.test(s[i])) i++;
    return s.slice(start, i);
  };
  while (i < s.length) {
    skipWs();
    if (s[i] === ',') { i++; continue; }
    const scheme = token();
    if (!scheme) { i++; continue; }
    const ch: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    out.push(ch);
    for (;;) {
      skipWs();
      const save = i;
      const name = token();
      skipWs();
      if (!name || s[i] !== '=') {
        // Not a parameter: the next challenge's scheme starts here.
        i = save;
        break;
      }
      i++;
      skipWs();
      let v = '';
      if (s[i] === '"') {
        i++;
        while (i < s.length && s[i] !== '"') {
          if (s[i] === '\\' && i + 1 < s.length) i++;
          v += s[i++];
        }
        i++;
      } else {
        const start = i;
        while (i < s.length && s[i] !== ',' && s[i] !== ' ') i++;
        v = s.slice(start, i);
      }
      ch.params[name.toLowerCase()] = v;
      skipWs();
      if (s[i] === ',') i++;
      else break;
    }
  }
  return out;
}

/** `repository:library/busybox:pull,push`, the scope a repository operation needs. */
export function repositoryScope(repository: string, actions: readonly string[]): string {
  return `repository:${repository}:${actions.join(',')}`;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** The minimum lifetime the token spec gives a token that names none. */
const DEFAULT_TOKEN_SECONDS = 60;
/** Renew this long before a token expires, so a request never leaves with a stale one. */
const EXPIRY_MARGIN_MS = 5_000;
/** The client ID sent to token servers, as docker sends `docker`. */
const CLIENT_ID = 'berth';

export interface AuthorizerOptions {
  credentials: (host: string) => Credentials | undefined | Promise<Credentials | undefined>;
  signal?: AbortSignal;
}

/**
 * Per registry: which auth it asks for (from GET /v2/), and per scope a token. One Authorizer
 * belongs to one set of credentials (one client), so cached tokens are never shared across users.
 */
export class Authorizer {
  readonly #opts: AuthorizerOptions;
  /** Base URL → the challenges of GET /v2/ (empty: open registry), once per registry. */
  readonly #pings = new Map<string, Promise<Challenge[]>>();
  readonly #tokens = new Map<string, CachedToken>();
  /** Refresh tokens the token server handed out (login's identity token). */
  readonly #refreshTokens = new Map<string, string>();

  constructor(opts: AuthorizerOptions) {
    this.#opts = opts;
  }

  /** GET /v2/ on an endpoint, cached; rejects when the endpoint cannot be reached at all. */
  ping(ep: Endpoint): Promise<Challenge[]> {
    let p = this.#pings.get(ep.url);
    if (!p) {
      p = (async () => {
        const res = await send({ method: 'GET', url: `${ep.url}/v2/`, insecure: ep.insecure, signal: this.#opts.signal });
        discard(res);
        if (res.status === 401) return parseChallenges(header(res, 'www-authenticate'));
        if (res.status >= 500) throw new RegistryError(ErrorCode.Unavailable, `${ep.url}/v2/: ${res.status} ${statusText(res.status)}`, res.status, undefined);
        return [];
      })();
      this.#pings.set(ep.url, p);
      p.catch(() => this.#pings.delete(ep.url));
    }
    return p;
  }

  /**
   * The Authorization header value for `scopes` on an endpoint, or undefined (anonymous and
   * open). With `challenge` (a 401's WWW-Authenticate) the token is fetched afresh for it.
   */
  async authorization(ep: Endpoint, scopes: readonly string[], retry?: { challenge?: string }): Promise<string | undefined> {
    let challenges = retry?.challenge ? parseChallenges(retry.challenge) : await this.ping(ep);
    if (retry && challenges.length === 0) challenges = await this.ping(ep);
    const creds = await this.#opts.credentials(ep.host);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer && bearer.params.realm) {
      if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
      const wanted = [...new Set([...scopes, ...(retry && bearer.params.scope ? bearer.params.scope.split(' ') : [])])].sort();
      const key = `${bearer.params.realm}\n${bearer.params.service ?? ''}\n${wanted.join(' ')}`;
      const cached = this.#tokens.get(key);
      if (!retry && cached && cached.expiresAt > Date.now()) return `Bearer ${cached.token}`;
      const t = await this.#fetchToken(ep, bearer.params, wanted, creds);
      this.#tokens.set(key, t);
      return `Bearer ${t.token}`;
    }
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (basic && creds && (creds.username || creds.password)) {
      return `Basic ${Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64')}`;
    }
    return undefined;
  }

  /**
   * Whether a retry with fresh auth could help: a Bearer token can be renewed; Basic only helps
   * when nothing was sent (a registry whose /v2/ was open but whose repository is not).
   */
  renewable(challenge: string | undefined, sentAuth: boolean): boolean {
    return parseChallenges(challenge).some((c) => (c.scheme === 'bearer' && c.params.realm !== undefined) || (c.scheme === 'basic' && !sentAuth));
  }

  /** The refresh token a token server gave for this endpoint's credentials, if any (login returns it). */
  refreshToken(ep: Endpoint): string | undefined {
    return this.#refreshTokens.get(ep.url);
  }

  async #fetchToken(ep: Endpoint, params: Record<string, string>, scopes: string[], creds: Credentials | undefined): Promise<CachedToken> {
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new RegistryError(ErrorCode.Unavailable, `invalid token realm from ${ep.host}`, 401, undefined);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new RegistryError(ErrorCode.Unavailable, `invalid token realm from ${ep.host}`, 401, undefined);
    let res: HttpResponse;
    const insecure = ep.insecure;
    if (creds?.identityToken) {
      // OAuth2 refresh-token grant (the token spec's POST form), as docker does with an identity token.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: CLIENT_ID });
      if (params.service) form.set('service', params.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await send({
        method: 'POST', url: realm.toString(), insecure, signal: this.#opts.signal,
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()),
      });
    } else {
      const url = new URL(realm);
      if (params.service) url.searchParams.set('service', params.service);
      for (const s of scopes) url.searchParams.append('scope', s);
      const headers: Record<string, string> = {};
      if (creds?.username || creds?.password) {
        headers.Authorization = `Basic ${Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64')}`;
        // Ask for a refresh token too: `login` hands it back as the identity token.
        url.searchParams.set('offline_token', 'true');
        url.searchParams.set('client_id', CLIENT_ID);
      }
      res = await send({ method: 'GET', url: url.toString(), insecure, signal: this.#opts.signal, headers });
    }
    if (res.status !== 200) {
      const e = await responseError(res, `token server ${realm.host}`);
      // A refused token request is a refusal of the credentials, whatever status the token server chose.
      if (res.status === 401 || res.status === 403) throw new RegistryError(ErrorCode.Unauthorized, e.message.startsWith('unauthorized') || e.message.startsWith('denied') ? e.message : `unauthorized: ${e.message}`, res.status, e.registryCode ?? 'UNAUTHORIZED');
      throw e;
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown; refresh_token?: unknown };
    try {
      body = JSON.parse((await readBody(res.body, 1 << 20)).toString('utf8')) as typeof body;
    } catch {
      throw new RegistryError(ErrorCode.Unavailable, `unreadable answer from token server ${realm.host}`, res.status, undefined);
    }
    const token = typeof body.access_token === 'string' && body.access_token ? body.access_token : typeof body.token === 'string' ? body.token : '';
    if (!token) throw new RegistryError(ErrorCode.Unavailable, `token server ${realm.host} answered without a token`, res.status, undefined);
    if (typeof body.refresh_token === 'string' && body.refresh_token) this.#refreshTokens.set(ep.url, body.refresh_token);
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? Math.max(body.expires_in, DEFAULT_TOKEN_SECONDS) : DEFAULT_TOKEN_SECONDS;
    return { token, expiresAt: Date.now() + seconds * 1000 - EXPIRY_MARGIN_MS };
  }
}
