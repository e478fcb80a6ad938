import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanPath, createIgnoreMatcher, parseDockerignore } from './dockerignore.ts';

const matcher = (text: string) => createIgnoreMatcher(parseDockerignore(text));
function check(text: string, expected: Record<string, boolean>) {
  const m = matcher(text);
  for (const [path, ignored] of Object.entries(expected)) assert.equal(m.ignores(path), ignored, `${JSON.stringify(text)} on ${path}`);
}

test('parsing: comments, blanks, trimming, cleaning, leading slash, exceptions', () => {
  const text = '\ufeff# comment\n\n  node_modules/  \n/build\n./dist//x/\n! /keep/../kept \n #not-a-comment\na/../../up\r\n/\n';
  assert.deepEqual(parseDockerignore(text), ['node_modules', 'build', 'dist/x', '!kept', '#not-a-comment', '../up', '/']);
});

test('literal names match the path and everything under it', () => {
  check('node_modules\n', { node_modules: true, 'node_modules/a/b.js': true, 'src/node_modules': false, node_modules2: false, '.': false });
  check('a/b\n', { 'a/b': true, 'a/b/c': true, a: false, 'a/bc': false, 'x/a/b': false });
});

test('* and ? stay within one path component', () => {
  check('*.log\n', { 'x.log': true, 'dir/x.log': false, '.log': true, 'x.log/inner': true });
  check('*/*.tmp\n', { 'a/b.tmp': true, 'b.tmp': false, 'a/b/c.tmp': false });
  check('file?.txt\n', { 'file1.txt': true, 'file.txt': false, 'file12.txt': false, 'file/.txt': false });
});

test('** crosses any number of directories, including none', () => {
  check('**/*.go\n', { 'a.go': true, 'x/y/z.go': true, 'x/y/z.golang': false });
  check('**/tmp\n', { tmp: true, 'a/tmp': true, 'a/b/tmp/c': true, 'a/xtmp': false });
  check('docs/**\n', { 'docs/a': true, 'docs/a/b': true, docs: false });
  check('a/**/z\n', { 'a/z': true, 'a/b/z': true, 'a/b/c/z': true, 'b/z': false });
  check('**\n', { anything: true, 'deep/er': true });
});

test('character classes and escapes follow Go filepath.Match', () => {
  check('[abc].txt\n', { 'a.txt': true, 'd.txt': false });
  check('[a-c]x\n', { bx: true, dx: false });
  check('[^a-c]x\n', { dx: true, ax: false });
  check('[!a]x\n', { '!x': true, ax: true, bx: false }); // `!` is not negation in Go
  check('\\*literal\n', { '*literal': true, xliteral: false });
  check('a.b\n', { 'a.b': true, axb: false });
  check('f(1)+{2}$\n', { 'f(1)+{2}$': true });
});

test('bad patterns are refused as Go filepath.Match refuses them', () => {
  for (const bad of ['[', 'a[b', '[]a]', '[-a]', '[a-]', '[z-a]', 'a\\']) {
    assert.throws(() => createIgnoreMatcher([bad]), /syntax error in pattern/, bad);
  }
  assert.throws(() => createIgnoreMatcher(['!']), /illegal exclusion pattern/);
});

test('exceptions re-include, and the last matching pattern wins', () => {
  const text = '*.md\n!README.md\n';
  check(text, { 'a.md': true, 'README.md': false });
  check('*.md\n!README*.md\nREADME-secret.md\n', { 'README.md': false, 'README-secret.md': true, 'x.md': true });
  check('docs\n!docs/keep.txt\n', { 'docs/a': true, 'docs/keep.txt': false, docs: true });
  check('!docs\ndocs\n', { 'docs/a': true });
  check('*\n!src\n', { 'src/a/b.ts': false, other: true, 'other/x': true });
});

test('a directory is excluded with its whole subtree, even when the exception names a file below it only through the directory', () => {
  // The parent matches `build`, so build/keep is excluded, then `!build/keep` brings it back.
  check('build\n!build/keep\n', { 'build/keep': false, 'build/keep/x': false, 'build/other': true });
});

test('paths are normalised before matching', () => {
  check('a/b\n', { './a/b': true, '/a/b': true, 'a//b/': true, 'a/./b': true });
});

test('canSkipDir: only ignored directories that no exception can reach', () => {
  const m = matcher('node_modules\ndata\n*.log\n!data/keep/**\n!**/important.log\n');
  assert.equal(m.canSkipDir('node_modules'), false, 'an exception with a leading ** may reach anywhere');
  const m2 = matcher('node_modules\ndata\n!data/keep\n!src/*.gen\n');
  assert.equal(m2.canSkipDir('node_modules'), true);
  assert.equal(m2.canSkipDir('node_modules/sub'), true);
  assert.equal(m2.canSkipDir('data'), false, 'data/keep is re-included');
  assert.equal(m2.canSkipDir('data/other'), true);
  assert.equal(m2.canSkipDir('data/keep'), false, 'not ignored at all');
  assert.equal(m2.canSkipDir('src'), false, 'not ignored');
  const m3 = matcher('big\n!*/keep\n');
  assert.equal(m3.canSkipDir('big'), false, '*/keep matches big/keep');
  const m4 = matcher('big\n!other/keep\n!b[^x]g/y\n');
  assert.equal(m4.canSkipDir('big'), false, 'a negated class may match anything: stay safe');
  const m5 = matcher('big\n!other/keep\n');
  assert.equal(m5.canSkipDir('big'), true);
  assert.equal(m5.hasExceptions, true);
});

test('canSkipDir agrees with ignores on every path under a skippable directory', () => {
  const text = 'cache\n!cache/a/keep.txt\nvendor/**\n!vendor/lib/*.h\n';
  const m = matcher(text);
  const paths = ['cache/a/keep.txt', 'cache/a/x', 'cache/b/y', 'vendor/lib/a.h', 'vendor/lib/a.c', 'vendor/other/x.h'];
  for (const dir of ['cache', 'cache/a', 'cache/b', 'vendor', 'vendor/lib', 'vendor/other']) {
    if (!m.canSkipDir(dir)) continue;
    for (const p of paths.filter((p) => p.startsWith(dir + '/'))) assert.equal(m.ignores(p), true, `${dir} skipped but ${p} is included`);
  }
  assert.equal(m.canSkipDir('cache/b'), true);
  assert.equal(m.canSkipDir('vendor/other'), true);
  assert.equal(m.canSkipDir('cache'), false);
});

test('cleanPath is Go path.Clean', () => {
  assert.equal(cleanPath('a//b/./c/..'), 'a/b');
  assert.equal(cleanPath('/../a'), '/a');
  assert.equal(cleanPath('../../a'), '../../a');
  assert.equal(cleanPath(''), '.');
  assert.equal(cleanPath('./'), '.');
});
