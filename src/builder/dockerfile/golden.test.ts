// Golden files for the Dockerfile front end: each folder of test/fixtures/dockerfile holds a
// Dockerfile and either expected.json (the typed Dockerfile that parseDockerfile returns, as
// stable JSON) or error.txt (the error message it must fail with). Folders named error-* must
// fail. A folder with env.json (variable → value) also has expanded.json: every stage's base and
// commands after expandCommand with those variables, the golden file for shell expansion.
// `UPDATE_GOLDEN=1` rewrites the expected files from the current output; review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseDockerfile } from './instructions.ts';
import { expandCommand, expandWord } from './expand.ts';
import type { Dockerfile } from './types.ts';

const FIXTURES = resolve(import.meta.dirname, '../../../test/fixtures/dockerfile');
const UPDATE = process.env.UPDATE_GOLDEN === '1';

/** JSON with object keys sorted, so expected files do not depend on construction order. */
function stableJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v && typeof v === 'object') {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(sort(value), null, 2) + '\n';
}

/** The stages with every word Docker expands expanded, with one fixed set of variables. */
function expanded(df: Dockerfile, env: Record<string, string>): unknown {
  const lookup = (name: string) => (Object.hasOwn(env, name) ? env[name] : undefined);
  const escape = df.directives.escape;
  return df.stages.map((stage) => ({
    base: expandWord(stage.base, lookup, escape),
    platform: stage.platform === undefined ? undefined : expandWord(stage.platform, lookup, escape),
    commands: stage.commands.map((c) => expandCommand(c, lookup, escape)),
  }));
}

const cases = readdirSync(FIXTURES, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

test('the golden folder is not empty', () => {
  assert.ok(cases.length >= 20, `only ${cases.length} cases in ${FIXTURES}`);
});

for (const name of cases) {
  test(`golden: ${name}`, () => {
    const dir = join(FIXTURES, name);
    const text = readFileSync(join(dir, 'Dockerfile'), 'utf8');
    const expectedPath = join(dir, 'expected.json');
    const errorPath = join(dir, 'error.txt');
    let actual: string;
    let failed = false;
    try {
      actual = stableJson(parseDockerfile(text));
    } catch (err) {
      actual = (err as Error).message + '\n';
      failed = true;
    }
    if (UPDATE) {
      writeFileSync(failed ? errorPath : expectedPath, actual);
      rmSync(failed ? expectedPath : errorPath, { force: true });
    }
    assert.equal(failed, name.startsWith('error-'), failed ? `unexpected error: ${actual}` : 'an error-* case must fail');
    const goldenPath = failed ? errorPath : expectedPath;
    assert.ok(existsSync(goldenPath), `${goldenPath} is missing (run with UPDATE_GOLDEN=1 and review it)`);
    assert.equal(actual, readFileSync(goldenPath, 'utf8'));

    const envPath = join(dir, 'env.json');
    if (existsSync(envPath) && !failed) {
      const env = JSON.parse(readFileSync(envPath, 'utf8')) as Record<string, string>;
      const expandedPath = join(dir, 'expanded.json');
      const expandedActual = stableJson(expanded(parseDockerfile(text), env));
      if (UPDATE) writeFileSync(expandedPath, expandedActual);
      assert.ok(existsSync(expandedPath), `${expandedPath} is missing (run with UPDATE_GOLDEN=1 and review it)`);
      assert.equal(expandedActual, readFileSync(expandedPath, 'utf8'));
    }
  });
}
