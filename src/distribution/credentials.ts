// Registry credentials where the docker CLI keeps them: `config.json` in $DOCKER_CONFIG or
// ~/.docker (`auths`, `credsStore`, `credHelpers`), and the `X-Registry-Auth` header the CLI
// sends berthd. Secrets pass through here and never into a message.
import { spawn } from 'node:child_process';
import { mkdir, readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/atomic-file.ts';
import { errno, invalidArgument, unavailable } from '../common/errors.ts';
import type { Credentials } from './types.ts';

/** The key Docker files Docker Hub's credentials under, whatever the user typed. */
export const DOCKER_HUB_KEY = 'https://index.docker.io/v1/';
const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** The `auths` key for a registry: Docker Hub's legacy URL, otherwise `host[:port]`. */
export function configKey(server: string | undefined): string {
  if (!server) return DOCKER_HUB_KEY;
  const host = hostnameOf(server);
  return DOCKER_HUB_NAMES.has(host) ? DOCKER_HUB_KEY : host;
}

/** `https://host:5000/v1/` → `host:5000`, as docker's ConvertToHostname. */
export function hostnameOf(server: string): string {
  let s = server.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = s.indexOf('/');
  if (slash >= 0) s = s.slice(0, slash);
  return s;
}

// ---- X-Registry-Auth ----------------------------------------------------------------------

/** Docker's AuthConfig, as it travels in `X-Registry-Auth` and the body of `POST /auth`. */
export interface AuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  email?: string;
  serveraddress?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** An AuthConfig object (any casing of its keys, as Go's JSON decoding allows) as credentials; undefined when it holds none. */
export function credentialsFromAuthConfig(raw: unknown): (Credentials & { serverAddress?: string }) | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const o: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) if (typeof v === 'string' && v !== '') o[k.toLowerCase()] = v;
  const out: Credentials & { serverAddress?: string } = {};
  let username = o.username as string | undefined;
  let password = o.password as string | undefined;
  if (!username && !password && typeof o.auth === 'string') {
    const pair = decodeBasicAuth(o.auth);
    if (pair) [username, password] = pair;
  }
  if (username) out.username = username;
  if (password) out.password = password;
  if (o.identitytoken) out.identityToken = o.identitytoken as string;
  if (o.registrytoken) out.registryToken = o.registrytoken as string;
  if (o.serveraddress) out.serverAddress = o.serveraddress as string;
  return out.username || out.password || out.identityToken || out.registryToken ? out : undefined;
}

/**
 * Decodes `X-Registry-Auth` (base64url of an AuthConfig JSON; standard base64 and missing padding
 * are accepted too). An absent, empty (`e30=`, `{}`) or unreadable header means anonymous, as in Docker.
 */
export function decodeRegistryAuth(header: string | undefined): Credentials | undefined {
  if (!header) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(header.trim(), 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  const c = credentialsFromAuthConfig(json);
  if (!c) return undefined;
  delete c.serverAddress;
  return c;
}

/** Encodes credentials for `X-Registry-Auth`, as the docker CLI does (base64url JSON). */
export function encodeRegistryAuth(creds: Credentials | undefined, serverAddress?: string): string {
  const a: AuthConfig = {};
  if (creds?.username) a.username = creds.username;
  if (creds?.password) a.password = creds.password;
  if (creds?.identityToken) a.identitytoken = creds.identityToken;
  if (creds?.registryToken) a.registrytoken = creds.registryToken;
  if (serverAddress) a.serveraddress = serverAddress;
  return Buffer.from(JSON.stringify(a)).toString('base64url');
}

function decodeBasicAuth(auth: string): [string, string] | undefined {
  const s = Buffer.from(auth, 'base64').toString('utf8');
  const i = s.indexOf(':');
  return i > 0 ? [s.slice(0, i), s.slice(i + 1)] : undefined;
}

// ---- config.json ----------------------------------------------------------------------------

interface AuthEntry {
  auth?: string;
  identitytoken?: string;
  [k: string]: unknown;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [k: string]: unknown;
}

/** `$DOCKER_CONFIG`, else `~/.docker`: where config.json and `manifests/` live. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || join(homedir(), '.docker');
}

/**
 * The docker CLI's credential store over one config directory. Reads go through a credential
 * helper when `credHelpers` names one for the host or `credsStore` is set, else the file's `auths`.
 */
export class CredentialStore {
  readonly dir: string;
  readonly #env: NodeJS.ProcessEnv;

  constructor(dir: string = dockerConfigDir(), env: NodeJS.ProcessEnv = process.env) {
    this.dir = dir;
    this.#env = env;
  }

  get path(): string {
    return join(this.dir, 'config.json');
  }

  async #read(): Promise<ConfigFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if (errno(e) === 'ENOENT') return {};
      throw e;
    }
    if (text.trim() === '') return {};
    try {
      const parsed = JSON.parse(text) as unknown;
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      return parsed as ConfigFile;
    } catch (e) {
      throw invalidArgument(`loading config file ${this.path}: ${(e as Error).message}`);
    }
  }

  async #write(cfg: ConfigFile): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.path, JSON.stringify(cfg, null, '\t') + '\n', 0o600);
  }

  /** The credential helper for a key, if any: `credHelpers[key]`, else `credsStore`. */
  #helperFor(cfg: ConfigFile, key: string): string | undefined {
    return cfg.credHelpers?.[key] || cfg.credHelpers?.[hostnameOf(key)] || cfg.credsStore || undefined;
  }

  /** The credentials stored for a registry (a host, `docker.io`, or a server URL), or undefined. */
  async get(server: string | undefined): Promise<Credentials | undefined> {
    const cfg = await this.#read();
    const key = configKey(server);
    const helper = this.#helperFor(cfg, key);
    if (helper) return helperGet(helper, key, this.#env);
    const auths = cfg.auths ?? {};
    let entry = auths[key];
    if (!entry) {
      // Entries written by older clients may carry a scheme or path: match on the host.
      const found = Object.keys(auths).find((k) => configKey(k) === key);
      if (found) entry = auths[found];
    }
    if (!entry) return undefined;
    return credentialsFromAuthConfig(entry);
  }

  /** Stores credentials as `docker login` does; returns where they went (for the CLI's warning). */
  async store(server: string | undefined, creds: Credentials): Promise<{ helper?: string }> {
    const cfg = await this.#read();
    const key = configKey(server);
    const helper = this.#helperFor(cfg, key);
    cfg.auths ??= {};
    if (helper) {
      await helperStore(helper, key, creds, this.#env);
      // As the docker CLI: the file keeps an empty entry naming the registry, never the secret.
      cfg.auths[key] = {};
    } else {
      const entry: AuthEntry = {};
      if (creds.username || creds.password) entry.auth = Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64');
      if (creds.identityToken) entry.identitytoken = creds.identityToken;
      cfg.auths[key] = entry;
    }
    await this.#write(cfg);
    return { helper };
  }

  /** Removes a registry's credentials; false when there were none. */
  async erase(server: string | undefined): Promise<boolean> {
    const cfg = await this.#read();
    const key = configKey(server);
    const helper = this.#helperFor(cfg, key);
    let found = false;
    const auths = cfg.auths ?? {};
    for (const k of Object.keys(auths)) {
      if (k === key || configKey(k) === key) {
        delete auths[k];
        found = true;
      }
    }
    if (helper) found = (await helperErase(helper, key, this.#env)) || found;
    if (found) await this.#write(cfg);
    return found;
  }
}

// ---- the credential-helper protocol ---------------------------------------------------------
// `docker-credential-<name> get|store|erase`: get and erase read the server URL on stdin; store
// reads {"ServerURL","Username","Secret"}; get answers the same JSON. A Username of `<token>`
// means the Secret is an identity token.

const TOKEN_USERNAME = '<token>';

interface HelperResult {
  code: number;
  stdout: string;
}

function runHelper(name: string, action: 'get' | 'store' | 'erase', input: string, env: NodeJS.ProcessEnv): Promise<HelperResult> {
  const program = `docker-credential-${name}`;
  return new Promise((resolve, reject) => {
    const child = spawn(program, [action], { stdio: ['pipe', 'pipe', 'pipe'], env });
    const out: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.resume();
    child.once('error', (e) => {
      // The message names the program, never what was piped to it.
      reject(unavailable(`error getting credentials - err: exec: "${program}": ${errno(e) === 'ENOENT' ? 'executable file not found in $PATH' : errno(e) ?? 'failed'}`));
    });
    child.once('close', (code) => resolve({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8') }));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** A helper's complaint, without anything we sent it. */
function helperFailure(name: string, action: string, r: HelperResult): Error {
  const text = r.stdout.trim().split('\n')[0].slice(0, 200);
  return unavailable(`error ${action === 'get' ? 'getting' : action === 'store' ? 'storing' : 'erasing'} credentials - err: docker-credential-${name} ${action}: exit status ${r.code}${text ? `, out: \`${text}\`` : ''}`);
}

const isNotFound = (r: HelperResult) => /credentials not found/i.test(r.stdout);

async function helperGet(name: string, key: string, env: NodeJS.ProcessEnv): Promise<Credentials | undefined> {
  const r = await runHelper(name, 'get', key, env);
  if (r.code !== 0) {
    if (isNotFound(r)) return undefined;
    throw helperFailure(name, 'get', r);
  }
  let o: { Username?: string; Secret?: string };
  try {
    o = JSON.parse(r.stdout) as typeof o;
  } catch {
    throw unavailable(`error getting credentials - err: docker-credential-${name} get: unreadable answer`);
  }
  if (!o.Secret && !o.Username) return undefined;
  if (o.Username === TOKEN_USERNAME) return { identityToken: o.Secret };
  return { username: o.Username, password: o.Secret };
}

async function helperStore(name: string, key: string, creds: Credentials, env: NodeJS.ProcessEnv): Promise<void> {
  const body = creds.identityToken
    ? { ServerURL: key, Username: TOKEN_USERNAME, Secret: creds.identityToken }
    : { ServerURL: key, Username: creds.username ?? '', Secret: creds.password ?? '' };
  const r = await runHelper(name, 'store', JSON.stringify(body), env);
  if (r.code !== 0) throw helperFailure(name, 'store', r);
}

async function helperErase(name: string, key: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const r = await runHelper(name, 'erase', key, env);
  if (r.code === 0) return true;
  if (isNotFound(r)) return false;
  throw helperFailure(name, 'erase', r);
}
