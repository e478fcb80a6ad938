// `berth registry serve` and `berth registry gc`: berth's own OCI registry, which needs no daemon.
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createLogger, type LogLevel } from '../../common/log.ts';
import { CliError, type Command, flags, requireArgs, UsageError } from '../command.ts';

const DEFAULT_LISTEN = '127.0.0.1:5000';
const DEFAULT_ROOT = '/var/lib/berth-registry';

/** `host:port`, `[v6]:port` or `:port` (all interfaces). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`invalid --listen address "${s}": expected HOST:PORT`, 125);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export const registryServe: Command = {
  usage: `Usage:  berth registry serve [OPTIONS]

Run an OCI Distribution Spec v1.1 registry in the foreground

Options:
      --listen string      Address to listen on (default "${DEFAULT_LISTEN}"; port 0 picks a free one)
      --root string        Directory that holds the registry's content (default "${DEFAULT_ROOT}")
      --htpasswd string    Require HTTP Basic auth against this htpasswd file (bcrypt entries, htpasswd -B)
      --auth string        Auth mode: "none", "htpasswd" or "token" (a bearer-token service at /token;
                           needs --htpasswd) (default: "htpasswd" with --htpasswd, else "none")
      --tls-cert string    Serve HTTPS with this certificate (PEM)
      --tls-key string     Private key for --tls-cert (PEM)
      --read-only          Refuse pushes and deletes (403 DENIED), e.g. while gc runs
      --workers int        Worker processes sharing the port (default 1)
      --log-level string   debug, info, warn or error; debug logs every request (default "info")
`,
  description: 'Run an OCI registry',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      listen: { type: 'string' }, root: { type: 'string' }, htpasswd: { type: 'string' }, auth: { type: 'string' },
      'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, workers: { type: 'string' }, 'log-level': { type: 'string' },
      'read-only': { type: 'boolean' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const { host, port } = parseListen(values.listen ?? DEFAULT_LISTEN);
    const level = (values['log-level'] ?? 'info') as LogLevel;
    if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new UsageError(`invalid --log-level "${level}"`, 125);
    const auth = values.auth ?? (values.htpasswd ? 'htpasswd' : 'none');
    if (auth !== 'none' && auth !== 'htpasswd' && auth !== 'token') throw new UsageError(`invalid --auth "${auth}": expected none, htpasswd or token`, 125);
    if (auth !== 'none' && !values.htpasswd) throw new UsageError(`--auth ${auth} needs --htpasswd FILE`, 125);
    if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw new UsageError('--tls-cert and --tls-key go together', 125);
    const workers = Number(values.workers ?? 1);
    if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new UsageError(`invalid --workers "${values.workers}"`, 125);
    const root = resolve(values.root ?? DEFAULT_ROOT);
    await mkdir(root, { recursive: true, mode: 0o755 }).catch((e) => {
      throw new CliError(`cannot create --root ${root}: ${(e as Error).message}`);
    });
    const log = createLogger(level, { module: 'registry' });
    const { serveRegistry } = await import('../../registry/cluster.ts');
    return serveRegistry({
      root, host, port, auth, log, logRequests: level === 'debug', workers, readOnly: Boolean(values['read-only']),
      htpasswd: values.htpasswd ? resolve(values.htpasswd) : undefined,
      tls: values['tls-cert'] ? { cert: resolve(values['tls-cert']), key: resolve(values['tls-key']!) } : undefined,
      ready: (url) => ctx.io.out(`listening on ${url}\n`),
    }).catch((e) => {
      if ((e as { code?: string }).code === 'EADDRINUSE') throw new CliError(`cannot listen on ${values.listen ?? DEFAULT_LISTEN}: address already in use`);
      if ((e as { code?: string }).code === 'ENOENT' || /bcrypt|htpasswd/.test((e as Error).message)) throw new CliError((e as Error).message);
      throw e;
    });
  },
};

export const registryGc: Command = {
  usage: `Usage:  berth registry gc [OPTIONS]

Remove blobs that no manifest references from a registry root

Options:
      --root string         The registry's root directory (default "${DEFAULT_ROOT}")
      --dry-run             Print what would be removed, remove nothing
      --delete-untagged     Also remove manifests no tag reaches (with what only they reference)

Stop the server first, or run it with --read-only meanwhile: a blob uploaded for a
manifest not yet pushed looks like garbage.
`,
  description: 'Garbage-collect a registry root',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { root: { type: 'string' }, 'dry-run': { type: 'boolean' }, 'delete-untagged': { type: 'boolean' } }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const root = resolve(values.root ?? DEFAULT_ROOT);
    const { stat } = await import('node:fs/promises');
    if (!(await stat(root).catch(() => undefined))?.isDirectory()) throw new CliError(`registry root ${root} does not exist`);
    const { collectGarbage } = await import('../../registry/gc.ts');
    const { FilesystemDriver } = await import('../../registry/storage/filesystem.ts');
    const r = await collectGarbage(new FilesystemDriver(root), { dryRun: Boolean(values['dry-run']), deleteUntagged: Boolean(values['delete-untagged']), report: ctx.io.out });
    const what = values['dry-run'] ? 'would be removed' : 'removed';
    ctx.io.out(`${r.manifests.length} manifest${r.manifests.length === 1 ? '' : 's'} and ${r.blobs.length} blob${r.blobs.length === 1 ? '' : 's'} (${r.bytes} bytes) ${what}\n`);
    return 0;
  },
};
