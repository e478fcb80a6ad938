import { invalidArgument } from '../common/errors.ts';

/** Docker's `filters` query parameter: `{"k":{"v":true}}` or the older `{"k":["v"]}`. */
export type Filters = Map<string, string[]>;

export function parseFilters(raw: string | null | undefined, allowed: readonly string[]): Filters {
  const out: Filters = new Map();
  if (!raw) return out;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (e) {
    throw invalidArgument(`invalid filter: ${raw}`, e);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgument(`invalid filter: ${raw}`);
  for (const [k, vals] of Object.entries(v)) {
    if (!allowed.includes(k)) throw invalidArgument(`invalid filter '${k}'`);
    const list = Array.isArray(vals) ? vals.map(String) : typeof vals === 'object' && vals ? Object.keys(vals).filter((x) => (vals as Record<string, unknown>)[x]) : [];
    out.set(k, list);
  }
  return out;
}

/** For boolean filters such as dangling: undefined when absent. */
export function boolFilter(f: Filters, key: string): boolean | undefined {
  const vals = f.get(key);
  if (!vals || vals.length === 0) return undefined;
  const v = vals[vals.length - 1].toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw invalidArgument(`invalid filter '${key}=${vals[vals.length - 1]}'`);
}

/** `label=key` or `label=key=value` against a label map. */
export function matchLabels(wanted: string[] | undefined, labels: Record<string, string>): boolean {
  if (!wanted) return true;
  return wanted.every((w) => {
    const i = w.indexOf('=');
    if (i < 0) return w in labels;
    return labels[w.slice(0, i)] === w.slice(i + 1);
  });
}

/** Go's path.Match: `*` and `?` never cross '/', `[...]` classes, backslash escapes. */
export function pathMatch(pattern: string, name: string): boolean {
  return globRegExp(pattern).test(name);
}

const globCache = new Map<string, RegExp>();
function globRegExp(pattern: string): RegExp {
  let re = globCache.get(pattern);
  if (re) return re;
  let s = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') s += '[^/]*';
    else if (c === '?') s += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) s += escapeRe(pattern[++i]);
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) throw invalidArgument(`syntax error in pattern "${pattern}"`);
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^')) cls = '^' + cls.slice(1);
      s += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else s += escapeRe(c);
  }
  re = new RegExp(s + '$');
  globCache.set(pattern, re);
  return re;
}

const escapeRe = (c: string) => c.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Docker's time filters (`until`, `since` on prune): a unix timestamp, RFC 3339 time or a Go duration back from now. */
export function parseTimestamp(v: string, now = Date.now()): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const d = parseGoDuration(v);
  if (d !== undefined) return now - d;
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidArgument(`invalid time or duration "${v}"`);
  return t;
}

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration such as `10m`, `1h30m`, `1.5h`, in milliseconds; undefined if it is not one. */
export function parseGoDuration(v: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let i = 0;
  let total = 0;
  if (v === '' || v === '0') return v === '0' ? 0 : undefined;
  while (i < v.length) {
    re.lastIndex = i;
    const m = re.exec(v);
    if (!m) return undefined;
    total += Number(m[1]) * UNITS[m[2]];
    i = re.lastIndex;
  }
  return total;
}
