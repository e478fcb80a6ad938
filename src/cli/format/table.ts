/**
 * The docker CLI's list output: `--format` handling (table / json / Go
 * template) and its text/tabwriter alignment.
 */
import { invalidArgument, isBerthError } from '../../common/errors.ts';
import { parseTemplate, renderHeader } from './template.ts';

// docker: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)
const MIN_WIDTH = 10;
const PADDING = 3;

interface Cell {
  text: string;
  width: number;
}

const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]$/u;
const EMOJI_PRESENTATION = /^\p{Emoji_Presentation}$/u;
// East Asian Wide and Fullwidth ranges (besides emoji presentation characters).
const WIDE: [number, number][] = [
  [0x1100, 0x115f], [0x231a, 0x231b], [0x2329, 0x232a], [0x2e80, 0x303e], [0x3041, 0x33ff],
  [0x3400, 0x4dbf], [0x4e00, 0x9fff], [0xa000, 0xa4cf], [0xa960, 0xa97f], [0xac00, 0xd7a3],
  [0xf900, 0xfaff], [0xfe10, 0xfe19], [0xfe30, 0xfe6f], [0xff00, 0xff60], [0xffe0, 0xffe6],
  [0x16fe0, 0x16fe4], [0x17000, 0x18cff], [0x1b000, 0x1b2ff], [0x1f200, 0x1f2ff], [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

/** Display width of one code point, as go-runewidth computes it (non-East-Asian locale). */
function runeWidth(r: number): number {
  if (r < 0x20 || (r >= 0x7f && r < 0xa0)) return 0;
  if (r < 0x300 && r !== 0xad) return 1;
  const ch = String.fromCodePoint(r);
  if (ZERO_WIDTH.test(ch)) return 0;
  if (r >= 0x1f1e6 && r <= 0x1f1ff) return 1; // regional indicators (flags) are narrow in go-runewidth
  if (EMOJI_PRESENTATION.test(ch)) return 2;
  for (const [lo, hi] of WIDE) {
    if (r < lo) break;
    if (r <= hi) return 2;
  }
  return 1;
}

const EXTEND = /^[\p{Grapheme_Extend}\p{Emoji_Modifier}\p{Mc}]$/u;
const PICTOGRAPHIC = /^\p{Extended_Pictographic}$/u;
const isRegionalIndicator = (r: number): boolean => r >= 0x1f1e6 && r <= 0x1f1ff;

/**
 * Splits text into grapheme clusters with the extended rules that uniseg
 * applies for go-runewidth (marks, ZWJ emoji sequences, flag pairs), without
 * the newer Indic conjunct rule.
 */
function graphemes(s: string): number[][] {
  const clusters: number[][] = [];
  let cur: number[] = [];
  for (const ch of s) {
    const r = ch.codePointAt(0)!;
    let join = false;
    if (cur.length > 0) {
      const prev = cur[cur.length - 1];
      if (prev === 0x0d) join = r === 0x0a;
      else if (prev < 0x20) join = false;
      else if (r === 0x200d || EXTEND.test(ch)) join = true;
      else if (prev === 0x200d && PICTOGRAPHIC.test(String.fromCodePoint(cur[0]))) join = PICTOGRAPHIC.test(ch);
      else if (isRegionalIndicator(r) && isRegionalIndicator(prev)) join = cur.length === 1;
    }
    if (join) cur.push(r);
    else {
      if (cur.length > 0) clusters.push(cur);
      cur = [r];
    }
  }
  if (cur.length > 0) clusters.push(cur);
  return clusters;
}

/**
 * The width of a cell as docker's tabwriter counts it (go-runewidth's
 * StringWidth): per grapheme cluster, the width of its first non-zero-width
 * rune. Plain text counts one per code point; East Asian wide characters and
 * emoji count two; combining marks count zero.
 */
export function displayWidth(s: string): number {
  if (/^[\x20-\x7e]*$/.test(s)) return s.length;
  let width = 0;
  for (const cluster of graphemes(s)) {
    for (const r of cluster) {
      const w = runeWidth(r);
      if (w > 0) {
        width += w;
        break;
      }
    }
  }
  return width;
}

/**
 * Aligns tab-separated cells the way Go's text/tabwriter does with docker's
 * settings (minwidth 10, tabwidth 1, padding 3, padchar ' ', no flags):
 * a column is a run of consecutive lines having a tab-terminated cell at that
 * index; each of its cells is padded to the widest cell + 3 (at least 10).
 * The last cell of a line is not part of a column and is never padded.
 * A '\f' acts as a newline that also ends all columns; '\v' is a soft tab.
 */
export function tabwrite(text: string): string {
  let out = '';
  let lines: Cell[][] = [[]];
  let cell = '';

  const terminateCell = (): number => {
    const line = lines[lines.length - 1];
    line.push({ text: cell, width: displayWidth(cell) });
    cell = '';
    return line.length;
  };
  const flush = (): void => {
    out += formatLines(lines);
    lines = [[]];
  };

  for (const ch of text) {
    if (ch === '\t' || ch === '\v') {
      terminateCell();
    } else if (ch === '\n' || ch === '\f') {
      const ncells = terminateCell();
      lines.push([]);
      // A line with a single cell cannot affect later columns, so it ends the
      // current block (as does a form feed).
      if (ch === '\f' || ncells === 1) flush();
    } else {
      cell += ch;
    }
  }
  if (cell.length > 0) terminateCell();
  flush();
  return out;
}

/** tabwriter's format(): lays out lines with columns computed block by block. */
function formatLines(lines: Cell[][]): string {
  let out = '';
  const widths: number[] = [];

  const writeLines = (line0: number, line1: number): void => {
    for (let i = line0; i < line1; i++) {
      const line = lines[i];
      line.forEach((c, j) => {
        out += c.text;
        if (j < widths.length) out += ' '.repeat(Math.max(0, widths[j] - c.width));
      });
      // The last buffered line has no newline of its own.
      if (i + 1 < lines.length) out += '\n';
    }
  };

  const format = (line0: number, line1: number): void => {
    const column = widths.length;
    for (let current = line0; current < line1; current++) {
      if (column >= lines[current].length - 1) continue;
      // A cell exists in this column: print the lines before the block,
      // then measure the block.
      writeLines(line0, current);
      line0 = current;
      let width = MIN_WIDTH;
      for (; current < line1; current++) {
        const line = lines[current];
        if (column >= line.length - 1) break;
        width = Math.max(width, line[column].width + PADDING);
      }
      widths.push(width);
      format(line0, current);
      widths.pop();
      line0 = current;
    }
    writeLines(line0, line1);
  };

  format(0, lines.length);
  return out;
}

/** Go's string order (bytewise UTF-8), which docker's map-based contexts use for JSON keys. */
function sortTopLevelKeys(item: unknown): unknown {
  if (typeof item !== 'object' || item === null || Array.isArray(item) || Object.getPrototypeOf(item) !== Object.prototype) {
    return item;
  }
  const keys = Object.keys(item).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const sorted: Record<string, unknown> = {};
  for (const k of keys) sorted[k] = (item as Record<string, unknown>)[k];
  return sorted;
}

/**
 * Renders items the way the docker CLI's formatter does.
 *  - 'table' or 'table <tmpl>': a header line (the template executed on
 *    `headers`, which maps each field name to its column title, e.g.
 *    {ID: 'IMAGE ID'}) then one line per item, aligned through tabwrite.
 *    A bare 'table' shows every header key, in order, as a column.
 *  - 'json': each item as `{{json .}}`, one per line.
 *  - anything else: a Go template, executed once per item, each followed by
 *    a newline; no header and no alignment.
 * As in docker, a literal backslash-t / backslash-n in the format becomes a
 * tab / newline, and spaces around the format are trimmed. Each item's
 * top-level keys are put in Go's sorted order first (docker renders its list
 * contexts as maps, so `{{json .}}` shows sorted keys).
 * Throws BerthError(InvalidArgument) with docker's "template parsing error: …".
 */
export function formatItems(format: string, items: unknown[], headers: Record<string, string>): string {
  const isTable = format.startsWith('table');
  let source = format;
  if (isTable) {
    source = format.slice('table'.length);
    if (source.trim() === '') source = Object.keys(headers).map((k) => `{{.${k}}}`).join('\t');
  } else if (format === 'json') {
    source = '{{json .}}';
  }
  source = source.replace(/^ +| +$/g, '').replace(/\\[tn]/g, (m) => (m === '\\t' ? '\t' : '\n'));

  const template = parseTemplate(source);
  let body = '';
  for (const item of items) {
    try {
      body += template.execute(sortTopLevelKeys(item)) + '\n';
    } catch (e) {
      if (isBerthError(e)) throw invalidArgument(`template parsing error: ${e.message}`, e);
      throw e;
    }
  }
  if (!isTable) return body;
  return tabwrite(renderHeader(template, headers) + '\n' + body);
}
