// Runs the registry in the foreground until SIGINT or SIGTERM: one process, or a primary with
// `workers` processes sharing the listening socket (node:cluster; the kernel spreads the
// connections). Workers hold no state of their own — uploads, tags and manifests all live in
// storage — so any worker can serve any request of any session.
import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import type { RegistryOptions } from './registry.ts';

export interface ServeOptions extends Omit<RegistryOptions, 'auth'> {
  auth: string;
  workers: number;
  /** Called once, when every process accepts connections. */
  ready: (url: string) => void;
}

const waitForSignal = () => new Promise<string>((resolve) => {
  const on = (sig: string) => resolve(sig);
  process.once('SIGINT', on);
  process.once('SIGTERM', on);
});

export async function serveRegistry(opts: ServeOptions): Promise<number> {
  const { startRegistry, prepareRegistry, listen, closeServer } = await import('./registry.ts');
  const auth = opts.auth as RegistryOptions['auth'];
  if (opts.workers <= 1) {
    const reg = await startRegistry({ ...opts, auth });
    opts.ready(reg.url);
    const sig = await waitForSignal();
    opts.log.info('stopping', { signal: sig });
    await reg.close();
    return 0;
  }

  if (cluster.isWorker) {
    // A worker re-runs the same command line; it serves and never prints.
    const { handler } = await prepareRegistry({ ...opts, auth });
    const server = await listen(handler, opts);
    process.send?.({ listening: (server.address() as AddressInfo).port });
    await waitForSignal();
    await closeServer(server);
    return 0;
  }

  // The primary: recovery once (stale uploads, the token secret), then the workers.
  const { driver, store, uploads } = await prepareRegistry({ ...opts, auth });
  const purged = opts.readOnly ? 0 : await uploads.purge(await store.catalog(), opts.uploadMaxAgeMs ?? 7 * 24 * 3600 * 1000);
  if (purged) opts.log.info('purged stale upload sessions', { count: purged });
  const leftovers = opts.readOnly ? 0 : (await driver.recover?.()) ?? 0;
  if (leftovers) opts.log.info('removed files a crash left half-written', { count: leftovers });
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  let stopping = false;
  const ports = await Promise.all(Array.from({ length: opts.workers }, () => new Promise<number>((resolve, reject) => {
    const w = cluster.fork();
    w.on('message', (m: { listening?: number }) => {
      if (typeof m?.listening === 'number') resolve(m.listening);
    });
    w.once('exit', (code) => {
      if (!stopping) reject(new Error(`registry worker exited with ${code} before it listened`));
    });
  })));
  cluster.on('exit', (w, code, signal) => {
    if (!stopping) opts.log.error('registry worker died', { pid: w.process.pid, code, signal });
  });
  const scheme = opts.tls ? 'https' : 'http';
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  opts.ready(`${scheme}://${host}:${ports[0]}`);
  const sig = await waitForSignal();
  stopping = true;
  opts.log.info('stopping', { signal: sig });
  const exits = Object.values(cluster.workers ?? {}).map((w) => new Promise<void>((resolve) => {
    if (!w || w.isDead()) return resolve();
    w.once('exit', () => resolve());
    w.process.kill('SIGTERM');
  }));
  await Promise.all(exits);
  return 0;
}
