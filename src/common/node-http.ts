import { createRequire } from 'node:module';
import type * as Http from 'node:http';

/**
 * node:http, loaded with require. An ESM import of a builtin evaluates every
 * export to build the namespace, and node:http's lazy exports pull in undici:
 * about 14 MB of resident memory and several milliseconds of start-up that the
 * daemon and the CLI never use.
 */
export const http: typeof Http = createRequire(import.meta.url)('node:http');
