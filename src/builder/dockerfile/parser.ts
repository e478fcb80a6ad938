// The Dockerfile parser: text → a flat list of instruction nodes with line numbers. It knows the
// syntax only — directives, comments, continuations, heredocs, flags, and the JSON form — and no
// meanings; `instructions.ts` gives each node its meaning. The rules follow BuildKit's
// `frontend/dockerfile/parser` so that the same file splits into the same instructions:
//   - parser directives (`# syntax=`, `# escape=`, `# check=`) only at the very top; the first
//     line that is not a directive (a blank line, a comment, an unknown directive, an
//     instruction) ends them, and a repeated directive is an error;
//   - a comment is a line whose first non-blank character is `#`, also in the middle of a
//     continued instruction, where it is simply dropped; blank lines inside a continuation too;
//   - a line ending in the escape character (trailing blanks allowed) continues on the next;
//     continuation lines keep their leading whitespace;
//   - RUN, COPY, ADD (and ONBUILD of those) may name heredocs (`<<EOF`, `<<-EOF`, `<<"EOF"`),
//     whose bodies follow the instruction, one after the other.

import { DockerfileError, type Directives, type Heredoc } from './types.ts';
import { expandWords, ExpansionError } from './expand.ts';
import { withSuggestion } from './suggest.ts';

/** One instruction as written. */
export interface Node {
  /** The instruction keyword, lower-cased (`run`, `from`, …). */
  keyword: string;
  /** Leading `--name[=value]` words, quotes removed, as BuildKit's flag extraction leaves them. */
  flags: string[];
  /** Everything after the keyword and the flags, trimmed. */
  rest: string;
  /** `rest` as a JSON string array, for the instructions that have an exec (JSON) form and used it. */
  json?: string[];
  heredocs: Heredoc[];
  /** For ONBUILD: the trigger instruction, parsed. */
  trigger?: Node;
  /** First and last line, 1-based (heredoc bodies included in endLine). */
  line: number;
  endLine: number;
  /** The instruction with its continuations joined, without heredoc bodies. */
  original: string;
}

export interface ParsedDockerfile {
  directives: Directives;
  nodes: Node[];
  /** Things Docker warns about but accepts (empty continuation lines). */
  warnings: { line: number; message: string }[];
}

/** Every instruction Docker knows. */
export const INSTRUCTIONS: ReadonlySet<string> = new Set([
  'add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label',
  'maintainer', 'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir',
]);

/** Instructions whose arguments may be a JSON array (BuildKit's parseMaybeJSON and parseMaybeJSONToList). */
const JSON_FORM = new Set(['run', 'cmd', 'entrypoint', 'shell', 'add', 'copy', 'volume']);
/** Instructions that may carry here-documents. */
const HEREDOC_FORM = new Set(['run', 'copy', 'add']);

const DIRECTIVE_RE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const KNOWN_DIRECTIVES = new Set(['syntax', 'escape', 'check']);
// Blanks between << and the name are allowed since BuildKit 0.22 (`RUN cat << EOF`).
const HEREDOC_RE = /^(\d*)<<(-?)\s*([^<]*)$/;
const NOT_STRINGS = 'when using JSON array syntax, arrays must be comprised of strings only';

/** Reads the directives at the top of the file, line by line, until the first non-directive. */
class DirectiveReader {
  directives: Directives = { escape: '\\' };
  #done = false;
  #seen = new Set<string>();

  read(line: string, lineNo: number): void {
    if (this.#done) return;
    const m = DIRECTIVE_RE.exec(line);
    if (!m) {
      this.#done = true;
      return;
    }
    const key = m[1].toLowerCase();
    // An unknown directive is a comment, and it ends the directives (Docker's reference).
    if (!KNOWN_DIRECTIVES.has(key)) {
      this.#done = true;
      return;
    }
    if (this.#seen.has(key)) throw new DockerfileError(lineNo, `only one ${key} parser directive can be used`);
    this.#seen.add(key);
    const value = m[2];
    if (key === 'escape') {
      if (value !== '`' && value !== '\\') throw new DockerfileError(lineNo, `invalid escape token '${value}' does not match \` or \\`);
      this.directives.escape = value;
    } else if (key === 'syntax') this.directives.syntax = value;
    else this.directives.check = value;
  }
}

const isComment = (line: string) => /^[ \t\f\v\r]*#/.test(line);
const isBlank = (line: string) => /^\s*$/.test(line);

/**
 * Removes a trailing escape character (and the blanks after it); says whether one was there. As
 * in BuildKit, an escape preceded by another escape (`\\` at the end) does not continue the line.
 */
function continuation(line: string, escape: string): { text: string; continues: boolean } {
  const body = line.replace(/[ \t]*$/, '');
  if (body.endsWith(escape) && (body.length === 1 || body[body.length - 2] !== escape)) {
    return { text: body.slice(0, -1), continues: true };
  }
  return { text: line, continues: false };
}

/** Splits text into lines that keep their line endings (heredoc bodies are taken byte for byte). */
function splitLines(text: string): string[] {
  const lines = text.split(/(?<=\n)/);
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

const trimNewline = (line: string) => line.replace(/[\r\n]+$/, '');

/** Parses a whole Dockerfile. Throws DockerfileError naming the line for syntax errors. */
export function parse(text: string): ParsedDockerfile {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rawLines = splitLines(text);
  const lines = rawLines.map(trimNewline);
  const reader = new DirectiveReader();
  const nodes: Node[] = [];
  const warnings: ParsedDockerfile['warnings'] = [];
  let i = 0;
  while (i < lines.length) {
    const first = lines[i].replace(/^\s+/, '');
    const startLine = i + 1;
    reader.read(first, startLine);
    i++;
    if (isComment(first) || first === '') continue;
    const escape = reader.directives.escape;
    let { text: joined, continues } = continuation(first, escape);
    let emptyContinuation = false;
    while (continues && i < lines.length) {
      const raw = lines[i];
      reader.read(raw, i + 1);
      i++;
      if (isComment(raw)) continue;
      if (isBlank(raw)) {
        emptyContinuation = true;
        continue;
      }
      const next = continuation(raw, escape);
      joined += next.text; // continuation lines keep their leading blanks
      continues = next.continues;
    }
    if (emptyContinuation) warnings.push({ line: startLine, message: 'Empty continuation line found in: ' + joined.trim() });
    if (joined.trim() === '') continue; // a lone escape character: nothing
    const node = nodeFromLine(joined, escape, startLine);
    node.line = startLine;
    // Heredoc bodies follow the instruction's last line, one after the other.
    const host = node.keyword === 'onbuild' ? node.trigger : node;
    if (host && HEREDOC_FORM.has(host.keyword) && host.json === undefined && joined.includes('<<')) {
      const docs = heredocsInLine(joined, startLine);
      for (const doc of docs) {
        let body = '';
        let terminated = false;
        while (i < lines.length) {
          const raw = lines[i];
          const withEnding = rawLines[i];
          i++;
          const candidate = doc.chomp ? raw.replace(/^\t+/, '') : raw;
          if (candidate === doc.name) {
            terminated = true;
            break;
          }
          body += withEnding;
        }
        if (!terminated) throw new DockerfileError(startLine, 'unterminated heredoc');
        doc.content = doc.chomp ? body.replace(/^\t+/gm, '') : body;
      }
      host.heredocs = docs;
      if (host !== node) node.heredocs = docs;
    }
    node.endLine = i;
    if (node.trigger) {
      node.trigger.line = node.line;
      node.trigger.endLine = node.endLine;
    }
    nodes.push(node);
  }
  if (nodes.length === 0) throw new DockerfileError(0, 'file with no instructions');
  return { directives: reader.directives, nodes, warnings };
}

/** Splits one logical line into keyword, flags and the rest, and reads the JSON form. */
function nodeFromLine(line: string, escape: string, lineNo: number, isTrigger = false): Node {
  const trimmed = line.trim();
  // The keyword ends at the first blank (BuildKit's [\t\v\f\r ]+), not at any Unicode space.
  const m = /^([^\t\v\f\r ]+)(?:[\t\v\f\r ]+([\s\S]*))?$/.exec(trimmed)!;
  const word = m[1];
  const keyword = word.toLowerCase();
  // Docker accepts any ONBUILD trigger word here and fails only when the trigger runs.
  if (!isTrigger && !INSTRUCTIONS.has(keyword)) {
    const names = [...INSTRUCTIONS].map((n) => n.toUpperCase());
    throw new DockerfileError(lineNo, withSuggestion(`unknown instruction: ${word}`, word, names, false));
  }
  const { flags, rest } = extractFlags(m[2] ?? '', escape);
  const node: Node = { keyword, flags, rest, heredocs: [], line: lineNo, endLine: lineNo, original: trimmed };
  if (keyword === 'onbuild') {
    if (rest !== '') node.trigger = nodeFromLine(rest, escape, lineNo, true);
    return node;
  }
  if (keyword === 'healthcheck') {
    // HEALTHCHECK [flags] TYPE <command>: only the command after the type may be JSON.
    const hm = /^(\S+)\s*([\s\S]*)$/.exec(rest);
    if (hm) {
      const json = parseJsonArray(hm[2], lineNo);
      if (json) node.json = json;
    }
    return node;
  }
  if (JSON_FORM.has(keyword)) {
    const json = parseJsonArray(rest, lineNo);
    if (json) node.json = json;
  }
  return node;
}

/**
 * The exec form: a JSON array of strings. Anything that is not valid JSON is shell form (as in
 * Docker, `RUN ["a", b]` runs through the shell); valid JSON that is not all strings is an error.
 */
function parseJsonArray(text: string, lineNo: number): string[] | undefined {
  const s = text.trimStart();
  if (!s.startsWith('[')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(s);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  if (!value.every((v) => typeof v === 'string')) throw new DockerfileError(lineNo, NOT_STRINGS);
  return value as string[];
}

/**
 * Takes the leading `--flag[=value]` words off an instruction's arguments. Quotes inside a flag
 * are removed and the escape character escapes one character; a bare `--` ends the flags.
 */
export function extractFlags(line: string, escape: string = '\\'): { flags: string[]; rest: string } {
  const flags: string[] = [];
  let pos = 0;
  for (;;) {
    while (pos < line.length && /\s/.test(line[pos])) pos++;
    if (!line.startsWith('--', pos)) return { flags, rest: line.slice(pos).trim() };
    let word = '';
    let blankOk = false;
    let quote = '';
    for (; pos < line.length; pos++) {
      let ch = line[pos];
      if (quote) {
        if (ch === quote) {
          quote = '';
          continue;
        }
      } else {
        if (/\s/.test(ch)) break;
        if (ch === '"' || ch === "'") {
          quote = ch;
          blankOk = true;
          continue;
        }
      }
      if (ch === escape) {
        if (pos + 1 === line.length) continue;
        ch = line[++pos];
      }
      word += ch;
    }
    if (word === '--') return { flags, rest: line.slice(pos).trim() };
    if (blankOk || word.length) flags.push(word);
  }
}

/**
 * The heredocs an instruction line names, in order. Words are found the way BuildKit finds them:
 * the line is split as a shell would (quotes and escapes kept), and each word of the form
 * `[n]<<[-]NAME` is a heredoc. A quoted NAME (`<<"EOF"`, `<<'EOF'`, `<<E"O"F`) turns expansion off.
 */
export function heredocsInLine(line: string, lineNo: number): Heredoc[] {
  const none = () => undefined;
  let words: string[];
  try {
    words = expandWords(line, none, '\\', { rawQuotes: true, rawEscapes: true, skipUnset: true });
  } catch {
    return []; // an unbalanced quote elsewhere on the line: no heredoc, as in BuildKit
  }
  const docs: Heredoc[] = [];
  for (const word of words) {
    const doc = parseHeredocWord(word, lineNo);
    if (doc) docs.push(doc);
  }
  return docs;
}

/** `<<EOF`, `<<-EOF`, `2<<"EOF"` → its Heredoc (content still empty); anything else → undefined. */
export function parseHeredocWord(word: string, lineNo: number = 0): Heredoc | undefined {
  const m = HEREDOC_RE.exec(word);
  if (!m || m[3] === '') return undefined;
  const none = () => undefined;
  let plain: string[];
  let raw: string[];
  try {
    plain = expandWords(m[3], none, '\\', { skipUnset: true });
    raw = expandWords(m[3], none, '\\', { skipUnset: true, rawQuotes: true });
  } catch (err) {
    if (err instanceof ExpansionError) throw new DockerfileError(lineNo, err.reason);
    throw err;
  }
  if (plain.length !== 1 || raw.length !== 1) return undefined;
  const quotes = (s: string) => (s.match(/["']/g) ?? []).length;
  return { name: plain[0], content: '', expand: quotes(plain[0]) === quotes(raw[0]), chomp: m[2] === '-' };
}
