import { parseArgs } from 'node:util';
import { isBerthError } from '../common/errors.ts';
import { createLogger, type LogLevel } from '../common/log.ts';
import { parsePool } from '../network/ipam.ts';
import { startDaemon, VERSION } from './daemon.ts';

const USAGE = `Usage: berthd [OPTIONS]

A container engine that speaks the Docker Engine API.

Options:
  -b, --bridge string      The default bridge network's device; made if missing (default "berth0")
      --bip string         The default bridge's address and prefix, e.g. 172.17.0.1/16 (default: the first free pool)
      --data-root string   Root directory of persistent state (default "/var/lib/berth")
      --dns list           Name servers for containers, instead of the host's (repeatable)
      --default-address-pool base=CIDR,size=N
                           Where new networks' subnets come from (repeatable; default Docker's pools)
  -H, --host string        Daemon socket to listen on (default "unix:///run/berth/berth.sock")
      --insecure-registry list
                           Registries (host:port or CIDR) that may use plain HTTP or unverified TLS (repeatable)
  -l, --log-level string   Set the logging level ("debug"|"info"|"warn"|"error") (default "info")
      --registry-mirror list
                           Preferred Docker Hub mirror (repeatable)
  -v, --version            Print version information and quit
`;

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'data-root': { type: 'string', default: '/var/lib/berth' },
        bridge: { type: 'string', short: 'b', default: 'berth0' },
        bip: { type: 'string' },
        dns: { type: 'string', multiple: true },
        'default-address-pool': { type: 'string', multiple: true },
        host: { type: 'string', short: 'H', default: 'unix:///run/berth/berth.sock' },
        'log-level': { type: 'string', short: 'l', default: 'info' },
        'insecure-registry': { type: 'string', multiple: true },
        'registry-mirror': { type: 'string', multiple: true },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`berthd: ${(e as Error).message}\n\n${USAGE}`);
    process.exit(125);
  }
  if (values.help) return void process.stdout.write(USAGE);
  if (values.version) return void process.stdout.write(`berthd version ${VERSION}\n`);
  const level = values['log-level'] as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) {
    process.stderr.write(`berthd: unknown log level "${level}"\n`);
    process.exit(125);
  }
  const host = values.host!;
  if (!host.startsWith('unix://')) {
    process.stderr.write(`berthd: only unix:// hosts are supported, got "${host}"\n`);
    process.exit(125);
  }
  const log = createLogger(level, { component: 'berthd' });
  let daemon;
  try {
    const pools = values['default-address-pool']?.map(parsePool);
    daemon = await startDaemon({
      dataRoot: values['data-root']!, socket: host.slice('unix://'.length), log,
      network: { bridge: values.bridge!, bip: values.bip, pools, dns: values.dns },
      registry: { insecure: values['insecure-registry'] ?? [], mirrors: values['registry-mirror'] ?? [] },
    });
  } catch (e) {
    process.stderr.write(`berthd: ${isBerthError(e) ? e.message : (e as Error).stack}\n`);
    process.exit(1);
  }
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal: sig });
    daemon.close().then(() => process.exit(0), (e) => {
      log.error('shutdown failed', { err: e });
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

await main();
