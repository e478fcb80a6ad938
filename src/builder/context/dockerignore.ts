// `.dockerignore`: which files of a build context the builder may see. The rules are Docker's
// (moby/patternmatcher, as the docker CLI and BuildKit apply them):
//   - lines starting with `#` are comments; blank lines are skipped; patterns are trimmed and
//     cleaned like Go's filepath.Clean, and a leading `/` is dropped (`/a`, `./a` and `a` agree);
//   - `!pattern` is an exception that re-includes what earlier patterns excluded: patterns are
//     tried in order and the last one that matches decides;
//   - a pattern that matches a directory excludes everything under it (every parent of a path is
//     tried against each pattern too);
//   - the syntax is Go's filepath.Match (`*` and `?` stop at `/`, `[...]` with `^` for negation,
//     `\` escapes) plus `**`, which matches any number of directories, including none.
// `canSkipDir` lets a walker leave an ignored directory unread when no exception could bring
// anything under it back, so an ignored gigabyte costs nothing.

import { invalidArgument } from '../../common/errors.ts';

/** Reads a .dockerignore file into its patterns (exceptions keep their leading `!`). */
export function parseDockerignore(text: string): string[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const patterns: string[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    // Only a `#` in the first column makes a comment (" #x" is a pattern, as in Docker).
    if (line.startsWith('#')) continue;
    let pattern = line.trim();
    if (pattern === '') continue;
    const exception = pattern.startsWith('!');
    if (exception) pattern = pattern.slice(1).trim();
    if (pattern !== '') {
      pattern = cleanPath(pattern);
      if (pattern.length > 1 && pattern.startsWith('/')) pattern = pattern.slice(1);
    }
    patterns.push(exception ? '!' + pattern : pattern);
  }
  return patterns;
}

export interface IgnoreMatcher {
  /**
   * Whether a context path (relative, `/`-separated) is left out of the build context. The same
   * answer for files and directories: a directory that is ignored may still hold re-included
   * paths (see canSkipDir), which a walker must then visit.
   */
  ignores(relPath: string, isDir?: boolean): boolean;
  /** True when the directory is ignored and no exception pattern can re-include anything under it. */
  canSkipDir(relPath: string): boolean;
  /** True when there are `!` exceptions. */
  readonly hasExceptions: boolean;
}

/** Builds a matcher from patterns as parseDockerignore returns them. Throws on a bad pattern. */
export function createIgnoreMatcher(patterns: string[]): IgnoreMatcher {
  const compiled: Pattern[] = [];
  for (const raw of patterns) {
    let text = raw.trim();
    if (text === '') continue;
    text = cleanPath(text);
    let exception = false;
    if (text.startsWith('!')) {
      if (text.length === 1) throw invalidArgument('illegal exclusion pattern: "!"');
      exception = true;
      text = text.slice(1);
    }
    compiled.push(compilePattern(text, exception));
  }
  return new Matcher(compiled);
}

interface Pattern {
  text: string;
  exception: boolean;
  match(path: string): boolean;
  /** Per-component matchers, for canSkipDir; undefined when a component holds `**` (or a negated class, which may cross `/`). */
  components: (((name: string) => boolean) | undefined)[];
}

class Matcher implements IgnoreMatcher {
  #patterns: Pattern[];
  readonly hasExceptions: boolean;

  constructor(patterns: Pattern[]) {
    this.#patterns = patterns;
    this.hasExceptions = patterns.some((p) => p.exception);
  }

  ignores(relPath: string, _isDir?: boolean): boolean {
    const path = normalizeRelPath(relPath);
    if (path === '.' || path === '') return false; // the context root itself is never excluded
    // Every ancestor directory, shortest first: a pattern matching one matches the path too.
    const ancestors: string[] = [];
    for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) ancestors.push(path.slice(0, i));
    let ignored = false;
    for (const pattern of this.#patterns) {
      // An exclusion can only change an included path and an exception only an excluded one.
      if (pattern.exception !== ignored) continue;
      if (pattern.match(path) || ancestors.some((a) => pattern.match(a))) ignored = !pattern.exception;
    }
    return ignored;
  }

  canSkipDir(relPath: string): boolean {
    if (!this.ignores(relPath, true)) return false;
    const dir = normalizeRelPath(relPath).split('/');
    return !this.#patterns.some((p) => p.exception && mayReachUnder(p, dir));
  }
}

/**
 * Whether an exception pattern might match something under `dir` (or one of its ancestors,
 * which would match everything under it). Errs on "might": each component before the first `**`
 * must match the directory's component at the same depth, and one that does not rules it out.
 */
function mayReachUnder(pattern: Pattern, dir: string[]): boolean {
  for (let i = 0; i < dir.length && i < pattern.components.length; i++) {
    const component = pattern.components[i];
    if (!component) return true; // `**` from here on: anything may follow
    if (!component(dir[i])) return false;
  }
  return true;
}

const REGEX_ESCAPED = new Set(['.', '+', '(', ')', '|', '{', '}', '$']);

/**
 * Compiles a pattern as patternmatcher does: a literal pattern compares exactly, `prefix**` by
 * prefix, `**suffix` (with no other wildcard) by suffix, anything else by regular expression.
 */
function compilePattern(text: string, exception: boolean, withComponents = true): Pattern {
  checkGlobSyntax(text);
  const chars = Array.from(text);
  let re = '^';
  let kind: 'exact' | 'prefix' | 'suffix' | 'regexp' = 'exact';
  for (let i = 0, n = 0; i < chars.length; n++) {
    const ch = chars[i++];
    if (ch === '*') {
      if (chars[i] === '*') {
        i++;
        if (chars[i] === '/') i++;
        if (i >= chars.length) {
          if (kind === 'exact') kind = 'prefix';
          else {
            re += '.*';
            kind = 'regexp';
          }
        } else {
          re += '(?:.*/)?';
          kind = 'regexp';
        }
        if (n === 0) kind = 'suffix';
      } else {
        re += '[^/]*';
        kind = 'regexp';
      }
    } else if (ch === '?') {
      re += '[^/]';
      kind = 'regexp';
    } else if (REGEX_ESCAPED.has(ch)) {
      re += '\\' + ch;
    } else if (ch === '\\') {
      re += literal(chars[i++]); // the syntax check refused a trailing backslash
      kind = 'regexp';
    } else if (ch === '[') {
      const cls = readClass(chars, i);
      re += cls.regex;
      i = cls.end;
      kind = 'regexp';
    } else if (ch === ']') {
      re += '\\]';
      kind = 'regexp';
    } else if (ch === '^') {
      re += '^'; // a regexp anchor in patternmatcher too: such a pattern matches nothing
    } else {
      re += literal(ch);
    }
  }
  let match: (path: string) => boolean;
  if (kind === 'exact') match = (path) => path === text;
  else if (kind === 'prefix') {
    const prefix = text.slice(0, -2);
    match = (path) => path.startsWith(prefix);
  } else if (kind === 'suffix') {
    const suffix = text.slice(2);
    match = (path) => path.endsWith(suffix) || (suffix.startsWith('/') && path === suffix.slice(1));
  } else {
    const regex = new RegExp(re + '$', 'u');
    match = (path) => regex.test(path);
  }
  return { text, exception, match, components: withComponents ? componentMatchers(text) : [] };
}

function componentMatchers(text: string): Pattern['components'] {
  const out: Pattern['components'] = [];
  for (const part of text.split('/')) {
    if (part.includes('**') || /\[\^/.test(part)) {
      out.push(undefined);
      break;
    }
    const pattern = compilePattern(part, false, false);
    out.push(pattern.match);
  }
  return out;
}

function literal(ch: string): string {
  return /[\\^$.*+?()[\]{}|/]/.test(ch) ? '\\' + ch : ch;
}

/** A `[...]` class starting after `[` at `start`, as a regular expression; `end` is past `]`. */
function readClass(chars: string[], start: number): { regex: string; end: number } {
  let i = start;
  let negate = false;
  if (chars[i] === '^') {
    negate = true;
    i++;
  }
  let body = '';
  let first = true;
  for (;;) {
    if (chars[i] === ']' && !first) return { regex: (negate ? '[^' : '[') + body + ']', end: i + 1 };
    first = false;
    let lo = chars[i++];
    if (lo === '\\') lo = chars[i++];
    body += classChar(lo);
    if (chars[i] === '-') {
      i++;
      let hi = chars[i++];
      if (hi === '\\') hi = chars[i++];
      body += '-' + classChar(hi);
    }
  }
}

function classChar(ch: string): string {
  return `\\u{${ch.codePointAt(0)!.toString(16)}}`;
}

/** Go's filepath.Match syntax check: classes closed and non-empty, ranges ordered, no trailing `\`. */
function checkGlobSyntax(text: string): void {
  const bad = () => invalidArgument(`syntax error in pattern: ${text}`);
  const chars = Array.from(text);
  let i = 0;
  // One class element: `-` and `]` must be escaped, and something must follow.
  const element = (): string => {
    let ch = chars[i];
    if (ch === undefined || ch === '-' || ch === ']') throw bad();
    if (ch === '\\') {
      i++;
      ch = chars[i];
      if (ch === undefined) throw bad();
    }
    i++;
    if (i >= chars.length) throw bad();
    return ch;
  };
  while (i < chars.length) {
    const ch = chars[i++];
    if (ch === '\\') {
      if (i >= chars.length) throw bad();
      i++;
    } else if (ch === '[') {
      if (chars[i] === '^') i++;
      let ranges = 0;
      for (;;) {
        if (chars[i] === ']' && ranges > 0) {
          i++;
          break;
        }
        const lo = element();
        if (chars[i] === '-') {
          i++;
          const hi = element();
          if (lo.codePointAt(0)! > hi.codePointAt(0)!) throw bad();
        }
        ranges++;
      }
    }
  }
}

/** A context path as the matcher compares it: `/`-separated, cleaned, no leading `/` or `./`. */
function normalizeRelPath(relPath: string): string {
  const cleaned = cleanPath(relPath);
  return cleaned.startsWith('/') ? cleaned.slice(1) || '.' : cleaned;
}

/** Go's path.Clean: collapse `//`, drop `.`, resolve `..` lexically, no trailing `/`. */
export function cleanPath(path: string): string {
  if (path === '') return '.';
  const rooted = path.startsWith('/');
  const out: string[] = [];
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      if (out.length && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(part);
  }
  const joined = out.join('/');
  if (rooted) return '/' + joined;
  return joined === '' ? '.' : joined;
}
