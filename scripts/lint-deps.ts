// Enforces the one-way module picture of DESIGN.md: stores never import
// services, nothing imports api or cli, and the CLI never touches the stores.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const SRC = resolve(import.meta.dirname, '..', 'src');
const STORES = ['content', 'snapshots', 'diff', 'metadata', 'images', 'distribution', 'builder', 'runtime', 'network', 'volumes', 'logs'];
// The CLI hosts two programs of its own that need no daemon: `berth registry serve|gc` (the OCI
// registry server) and `berth manifest …`, which talks to registries directly, as the docker CLI does.
// Both may use the pure registry client, and the server may use the content and image models.

/** Which top-level modules each module may import (itself always allowed). */
const ALLOWED: Record<string, string[]> = {
  common: [],
  'api-types': ['common'],
  'api-client': ['api-types', 'common'],
  cli: ['api-client', 'api-types', 'common', 'distribution', 'registry'],
  registry: ['content', 'images', 'distribution', 'common'],
  services: [...STORES, 'common'],
  api: ['services', 'api-types', ...STORES, 'common'],
  daemon: ['api', 'services', ...STORES, 'common'],
  ...Object.fromEntries(STORES.map((s) => [s, [...STORES.filter((x) => x !== s), 'common']])),
};

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const IMPORT_RE = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const problems: string[] = [];
for (const file of files(SRC)) {
  const mod = relative(SRC, file).split(sep)[0];
  const allowed = ALLOWED[mod];
  if (!allowed) {
    problems.push(`${relative(SRC, file)}: module "${mod}" has no place in the dependency picture (scripts/lint-deps.ts)`);
    continue;
  }
  const text = readFileSync(file, 'utf8');
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2];
    if (!spec.startsWith('.')) continue;
    const target = relative(SRC, resolve(dirname(file), spec)).split(sep)[0];
    if (target === mod || target.startsWith('..')) continue;
    if (!allowed.includes(target)) problems.push(`${relative(SRC, file)}: ${mod} must not import ${target} (${spec})`);
  }
}
if (problems.length) {
  process.stderr.write(`dependency direction violated:\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}
process.stdout.write('lint-deps: module dependencies follow the picture\n');
