// The registry's composition root: storage, store, uploads, auth and the HTTP(S) server, with
// the recovery a start needs (stale upload sessions purged, the token secret made once).
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../common/log.ts';
import { type AuthMode, Authenticator, Htpasswd } from './auth.ts';
import { layout } from './layout.ts';
import { registryHandler } from './server.ts';
import type { StorageDriver } from './storage/driver.ts';
import { FilesystemDriver } from './storage/filesystem.ts';
import { RegistryStore } from './store.ts';
import { Uploads } from './uploads.ts';

export interface RegistryOptions {
  root: string;
  host: string;
  port: number;
  auth: AuthMode;
  htpasswd?: string;
  tls?: { cert: string; key: string };
  log: Logger;
  logRequests?: boolean;
  readOnly?: boolean;
  /** Upload sessions older than this are deleted at start; younger ones stay resumable. */
  uploadMaxAgeMs?: number;
  driver?: StorageDriver;
}

export interface RunningRegistry {
  server: Server;
  url: string;
  port: number;
  store: RegistryStore;
  close(): Promise<void>;
}

const WEEK_MS = 7 * 24 * 3600 * 1000;

/** The per-root HMAC key for bearer tokens, made on first use (every process on a root shares it). */
export async function tokenSecret(driver: StorageDriver): Promise<Buffer> {
  const have = await driver.getContent(layout.tokenSecret);
  if (have && have.length >= 32) return have;
  await driver.putContent(layout.tokenSecret, randomBytes(32), { secret: true });
  return (await driver.getContent(layout.tokenSecret))!;
}

/** Opens the store, makes the handler and its state; no socket yet. */
export async function prepareRegistry(opts: Omit<RegistryOptions, 'host' | 'port'>) {
  const driver = opts.driver ?? new FilesystemDriver(opts.root);
  const store = new RegistryStore(driver);
  const uploads = new Uploads(store);
  const htpasswd = opts.htpasswd ? await Htpasswd.load(opts.htpasswd) : undefined;
  const mode: AuthMode = opts.auth === 'none' && htpasswd ? 'htpasswd' : opts.auth;
  const auth = new Authenticator(mode, htpasswd, mode === 'token' ? await tokenSecret(driver) : Buffer.alloc(0));
  const handler = registryHandler({ store, uploads, auth, log: opts.log, logRequests: opts.logRequests, readOnly: opts.readOnly });
  return { driver, store, uploads, auth, handler };
}

export async function startRegistry(opts: RegistryOptions): Promise<RunningRegistry> {
  const { driver, store, uploads, handler } = await prepareRegistry(opts);
  // A read-only registry changes nothing on disk, stale uploads included.
  const purged = opts.readOnly ? 0 : await uploads.purge(await store.catalog(), opts.uploadMaxAgeMs ?? WEEK_MS);
  if (purged) opts.log.info('purged stale upload sessions', { count: purged });
  const leftovers = opts.readOnly ? 0 : (await driver.recover?.()) ?? 0;
  if (leftovers) opts.log.info('removed files a crash left half-written', { count: leftovers });
  const server = await listen(handler, opts);
  const port = (server.address() as AddressInfo).port;
  const scheme = opts.tls ? 'https' : 'http';
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    server,
    port,
    store,
    url: `${scheme}://${host}:${port}`,
    close: () => closeServer(server),
  };
}

/** Binds an HTTP or HTTPS server with timeouts fit for a registry: long uploads, bounded idle. */
export async function listen(handler: Parameters<typeof createHttpServer>[1] & object, opts: Pick<RegistryOptions, 'host' | 'port' | 'tls'>): Promise<Server> {
  const serverOpts = { keepAliveTimeout: 30_000, requestTimeout: 0, headersTimeout: 60_000 };
  const server: Server = opts.tls
    ? createHttpsServer({ ...serverOpts, cert: await readFile(opts.tls.cert), key: await readFile(opts.tls.key) }, handler) as unknown as Server
    : createHttpServer(serverOpts, handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
    // Requests still streaming get a moment, then their connections are cut.
    setTimeout(() => server.closeAllConnections(), 2000).unref();
  });
}
