/**
 * Go text/template, as the docker CLI uses it for `--format`.
 *
 * The lexer, parser and evaluator follow the semantics of Go's text/template
 * (Go 1.24: break/continue, `else with`, range over an integer) over plain
 * JavaScript values:
 *   - objects behave like Go maps (missing key → `<no value>`; keys are
 *     ranged over and printed in sorted order);
 *   - arrays behave like Go slices;
 *   - integral numbers are Go `int`s, other numbers (and float literals) are
 *     `float64`s;
 *   - `null` is a nil interface value, `undefined` is Go's "invalid" value;
 *   - function-valued properties act as methods (`{{.Label "x"}}`).
 * The function set is Go's builtins plus the docker CLI's (json, split, join,
 * title, lower, upper, pad, truncate). Error texts follow Go's, so that users
 * see what `docker` would print.
 */
import { invalidArgument } from '../../common/errors.ts';

export interface Template {
  /** Runs the template on `data`. Throws BerthError(InvalidArgument) with Go's execution error text. */
  execute(data: unknown): string;
}

/**
 * Parses a Go text/template. Throws BerthError(InvalidArgument) with docker's text,
 * e.g. `template parsing error: template: :1: function "foo" not defined`.
 */
export function parseTemplate(source: string): Template {
  try {
    return new GoTemplate(source);
  } catch (e) {
    if (e instanceof ParseError) throw invalidArgument(`template parsing error: ${e.message}`, e);
    throw e;
  }
}

/**
 * Executes `template` on a table's header map the way the docker CLI does:
 * with its "header functions" (json, split, join, title, lower, upper and
 * truncate return their first argument unchanged), and ignoring any execution
 * error (the output written before the error is kept).
 */
export function renderHeader(template: Template, headers: Record<string, string>): string {
  if (!(template instanceof GoTemplate)) return template.execute(headers);
  return template.run(headers, HEADER_FUNCS, true);
}

// ---------------------------------------------------------------------------
// Errors and control-flow signals

class ParseError extends Error {}
class ExecError extends Error {}
/** An error returned by a template function; reported as `error calling NAME: …`. */
class FuncError extends Error {}
const BREAK = Symbol('break');
const CONTINUE = Symbol('continue');
/** Go's missingVal: "no value passed from the previous pipeline stage". */
const MISSING = Symbol('missing');

// ---------------------------------------------------------------------------
// Values

/** A float64 whose value may be integral (from a literal such as `2.0`). */
class GoFloat {
  readonly value: number;
  constructor(value: number) {
    this.value = value;
  }
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isFloat = (v: unknown): boolean => v instanceof GoFloat || (typeof v === 'number' && !Number.isInteger(v));
const floatOf = (v: unknown): number => (v instanceof GoFloat ? v.value : (v as number));
const isMap = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof GoFloat);

/** Go's type name for a value, as shown in error messages. */
function typeName(v: unknown): string {
  if (v === null || v === undefined) return 'interface {}';
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'bigint') return 'int64';
  if (isInt(v)) return 'int';
  if (isFloat(v)) return 'float64';
  if (Array.isArray(v)) return v.length > 0 && v.every((e) => typeof e === 'string') ? '[]string' : '[]interface {}';
  if (typeof v === 'function') return 'func(...interface {}) interface {}';
  return 'map[string]interface {}';
}

/** indirectInterface: a nil interface value becomes the invalid value. */
const deref = (v: unknown): unknown => (v === null ? undefined : v);

function isTrue(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') return v.length > 0;
  if (typeof v === 'number') return v !== 0;
  if (v instanceof GoFloat) return v.value !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'function') return true;
  return Object.keys(v as object).length > 0;
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/**
 * Decodes bytes as Go ranges over a string: each byte of an invalid or
 * truncated UTF-8 sequence becomes one U+FFFD.
 */
function decodeUTF8(b: Uint8Array): string {
  let out = '';
  let i = 0;
  const cont = (j: number, lo = 0x80, hi = 0xbf): boolean => j < b.length && b[j] >= lo && b[j] <= hi;
  while (i < b.length) {
    const c = b[i];
    let n = 0;
    if (c < 0x80) n = 1;
    else if (c >= 0xc2 && c <= 0xdf) n = cont(i + 1) ? 2 : 0;
    else if (c >= 0xe0 && c <= 0xef) {
      const [lo, hi] = c === 0xe0 ? [0xa0, 0xbf] : c === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
      n = cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
    } else if (c >= 0xf0 && c <= 0xf4) {
      const [lo, hi] = c === 0xf0 ? [0x90, 0xbf] : c === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
      n = cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    }
    if (n === 0) {
      out += '\uFFFD';
      i++;
    } else {
      out += Buffer.from(b.subarray(i, i + n)).toString('utf8');
      i += n;
    }
  }
  return out;
}
const byteLength = (s: string): number => Buffer.byteLength(s, 'utf8');
const runeCount = (s: string): number => {
  let n = 0;
  for (const _ of s) n++;
  return n;
};

/** Go's string ordering (bytewise on UTF-8, i.e. by code point). */
function compareStrings(a: string, b: string): number {
  return Buffer.compare(utf8(a), utf8(b));
}

function sortedKeys(m: object): string[] {
  return Object.keys(m)
    .filter((k) => (m as Record<string, unknown>)[k] !== undefined)
    .sort(compareStrings);
}

/** Finds a function-valued property to call as a method (never Object.prototype's). */
function lookupMethod(receiver: object, name: string): ((...args: unknown[]) => unknown) | undefined {
  if (receiver instanceof GoFloat || name === 'constructor') return undefined;
  const v = (receiver as Record<string, unknown>)[name];
  if (typeof v !== 'function') return undefined;
  if (!Object.hasOwn(receiver, name) && (Object.prototype as Record<string, unknown>)[name] === v) return undefined;
  return v as (...args: unknown[]) => unknown;
}

/** A map entry: an own property, or a class instance's accessor (never Object.prototype's). */
function fieldOf(m: Record<string, unknown>, name: string): unknown {
  if (Object.hasOwn(m, name)) return m[name];
  const proto = Object.getPrototypeOf(m);
  if (proto === Object.prototype || proto === null || !(name in m) || name in Object.prototype) return undefined;
  return m[name];
}

// ---------------------------------------------------------------------------
// Go string quoting (strconv)

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const isPrint = (r: number): boolean => r === 0x20 || (r > 0x20 && PRINTABLE.test(String.fromCodePoint(r)));
const hex = (n: number, width: number): string => n.toString(16).padStart(width, '0');

function escapeRune(r: number, quote: number): string {
  if (r === quote || r === 0x5c) return '\\' + String.fromCodePoint(r);
  if (isPrint(r)) return String.fromCodePoint(r);
  switch (r) {
    case 7: return '\\a';
    case 8: return '\\b';
    case 12: return '\\f';
    case 10: return '\\n';
    case 13: return '\\r';
    case 9: return '\\t';
    case 11: return '\\v';
  }
  if (r < 0x20 || r === 0x7f) return '\\x' + hex(r, 2);
  if (r >= 0xd800 && r <= 0xdfff) return '\\ufffd';
  if (r < 0x10000) return '\\u' + hex(r, 4);
  return '\\U' + hex(r, 8);
}

/** strconv.Quote */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) out += escapeRune(ch.codePointAt(0)!, 0x22);
  return out + '"';
}

/** strconv.QuoteRune */
function goQuoteRune(r: number): string {
  if (r > 0x10ffff || r < 0 || (r >= 0xd800 && r <= 0xdfff)) r = 0xfffd;
  return "'" + escapeRune(r, 0x27) + "'";
}

/** %#U */
function fmtU(r: number): string {
  const s = 'U+' + r.toString(16).toUpperCase().padStart(4, '0');
  return isPrint(r) ? `${s} '${String.fromCodePoint(r)}'` : s;
}

interface Unquoted {
  value: number;
  /** true when value is a rune to encode as UTF-8, false for a raw byte */
  rune: boolean;
  next: number;
}

/** strconv.UnquoteChar on s at index i; null on a syntax error. */
function unquoteChar(s: string, i: number, quote: string): Unquoted | null {
  const c = s.codePointAt(i);
  if (c === undefined) return null;
  const ch = String.fromCodePoint(c);
  if (ch === quote && (quote === "'" || quote === '"')) return null;
  if (c >= 0x80) return { value: c, rune: true, next: i + ch.length };
  if (ch !== '\\') return { value: c, rune: true, next: i + 1 };
  const e = s[i + 1];
  if (e === undefined) return null;
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, '\\': 0x5c };
  if (Object.hasOwn(simple, e)) return { value: simple[e], rune: true, next: i + 2 };
  if (e === "'" || e === '"') return e === quote ? { value: e.charCodeAt(0), rune: true, next: i + 2 } : null;
  if (e === 'x' || e === 'u' || e === 'U') {
    const n = e === 'x' ? 2 : e === 'u' ? 4 : 8;
    const digits = s.slice(i + 2, i + 2 + n);
    if (digits.length !== n || !/^[0-9a-fA-F]+$/.test(digits)) return null;
    const v = parseInt(digits, 16);
    if (e === 'x') return { value: v, rune: false, next: i + 2 + n };
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return null;
    return { value: v, rune: true, next: i + 2 + n };
  }
  if (e >= '0' && e <= '7') {
    const digits = s.slice(i + 1, i + 4);
    if (!/^[0-7]{3}$/.test(digits)) return null;
    const v = parseInt(digits, 8);
    if (v > 255) return null;
    return { value: v, rune: false, next: i + 4 };
  }
  return null;
}

/** strconv.Unquote for "…" and `…` literals; null on a syntax error. */
function goUnquote(s: string): string | null {
  if (s.length < 2) return null;
  const q = s[0];
  if (q !== s[s.length - 1]) return null;
  const body = s.slice(1, -1);
  if (q === '`') return body.includes('`') ? null : body.replaceAll('\r', '');
  if (q !== '"' || body.includes('\n')) return null;
  const bytes: number[] = [];
  for (let i = 0; i < body.length; ) {
    const u = unquoteChar(body, i, '"');
    if (!u) return null;
    if (u.rune) bytes.push(...utf8(String.fromCodePoint(u.value)));
    else bytes.push(u.value);
    i = u.next;
  }
  return decodeUTF8(Uint8Array.from(bytes));
}

// ---------------------------------------------------------------------------
// Lexer

const I = {
  Error: 0, Bool: 1, Char: 2, CharConstant: 3, Complex: 4, Assign: 5, Declare: 6, EOF: 7, Field: 8,
  Identifier: 9, LeftDelim: 10, LeftParen: 11, Number: 12, Pipe: 13, RawString: 14, RightDelim: 15,
  RightParen: 16, Space: 17, String: 18, Text: 19, Variable: 20,
  Keyword: 21, Block: 22, Break: 23, Continue: 24, Dot: 25, Define: 26, Else: 27, End: 28, If: 29,
  Nil: 30, Range: 31, TemplateKw: 32, With: 33,
} as const;
type ItemType = (typeof I)[keyof typeof I];

const KEYWORDS = new Map<string, ItemType>([
  ['.', I.Dot], ['block', I.Block], ['break', I.Break], ['continue', I.Continue], ['define', I.Define],
  ['else', I.Else], ['end', I.End], ['if', I.If], ['range', I.Range], ['nil', I.Nil],
  ['template', I.TemplateKw], ['with', I.With],
]);

interface Item {
  typ: ItemType;
  pos: number;
  val: string;
  line: number;
}

const EOF = -1;
const isSpace = (r: number): boolean => r === 0x20 || r === 9 || r === 13 || r === 10;
const ALNUM = /^[\p{L}\p{Nd}_]$/u;
const isAlphaNumeric = (r: number): boolean => r >= 0 && ALNUM.test(String.fromCodePoint(r));
const countNewlines = (s: string): number => s.split('\n').length - 1;
const hasLeftTrimMarker = (s: string, i: number): boolean => s[i] === '-' && i + 1 < s.length && isSpace(s.charCodeAt(i + 1));
const hasRightTrimMarker = (s: string, i: number): boolean => i + 1 < s.length && isSpace(s.charCodeAt(i)) && s[i + 1] === '-';
const SPACE_CHARS = ' \t\r\n';

/** Lexes the whole input; the last item is EOF or an Error. */
function lex(input: string): Item[] {
  const items: Item[] = [];
  let pos = 0;
  let start = 0;
  let width = 0;
  let parenDepth = 0;
  let line = 1;
  let startLine = 1;
  type State = (() => State) | null;

  const next = (): number => {
    if (pos >= input.length) {
      width = 0;
      return EOF;
    }
    const r = input.codePointAt(pos)!;
    width = r > 0xffff ? 2 : 1;
    pos += width;
    if (r === 10) line++;
    return r;
  };
  const backup = (): void => {
    pos -= width;
    if (width === 1 && input.charCodeAt(pos) === 10) line--;
  };
  const peek = (): number => {
    const r = next();
    backup();
    return r;
  };
  const emit = (t: ItemType): void => {
    items.push({ typ: t, pos: start, val: input.slice(start, pos), line: startLine });
    start = pos;
    startLine = line;
  };
  const ignore = (): void => {
    line += countNewlines(input.slice(start, pos));
    start = pos;
    startLine = line;
  };
  const errorf = (msg: string): State => {
    items.push({ typ: I.Error, pos: start, val: msg, line: startLine });
    return null;
  };
  const accept = (valid: string): boolean => {
    const r = next();
    if (r !== EOF && valid.includes(String.fromCodePoint(r))) return true;
    backup();
    return false;
  };
  const acceptRun = (valid: string): void => {
    for (;;) {
      const r = next();
      if (r === EOF || !valid.includes(String.fromCodePoint(r))) break;
    }
    backup();
  };
  const atRightDelim = (): [boolean, boolean] => {
    if (hasRightTrimMarker(input, pos) && input.startsWith('}}', pos + 2)) return [true, true];
    if (input.startsWith('}}', pos)) return [true, false];
    return [false, false];
  };
  const atTerminator = (): boolean => {
    const r = peek();
    if (isSpace(r)) return true;
    switch (r) {
      case EOF: case 0x2e: case 0x2c: case 0x7c: case 0x3a: case 0x29: case 0x28:
        return true;
    }
    return input.startsWith('}}', pos);
  };

  const lexText = (): State => {
    width = 0;
    const x = input.indexOf('{{', pos);
    if (x >= 0) {
      pos = x;
      let trim = 0;
      if (hasLeftTrimMarker(input, x + 2)) {
        const text = input.slice(start, pos);
        trim = text.length - trimRight(text).length;
      }
      pos -= trim;
      if (pos > start) {
        line += countNewlines(input.slice(start, pos));
        emit(I.Text);
      }
      pos += trim;
      ignore();
      return lexLeftDelim;
    }
    pos = input.length;
    if (pos > start) {
      line += countNewlines(input.slice(start, pos));
      emit(I.Text);
    }
    emit(I.EOF);
    return null;
  };
  const lexLeftDelim = (): State => {
    pos += 2;
    const after = hasLeftTrimMarker(input, pos) ? 2 : 0;
    if (input.startsWith('/*', pos + after)) {
      pos += after;
      ignore();
      return lexComment;
    }
    emit(I.LeftDelim);
    pos += after;
    ignore();
    parenDepth = 0;
    return lexInsideAction;
  };
  const lexComment = (): State => {
    pos += 2;
    const i = input.indexOf('*/', pos);
    if (i < 0) return errorf('unclosed comment');
    pos = i + 2;
    const [delim, trim] = atRightDelim();
    if (!delim) return errorf('comment ends before closing delimiter');
    if (trim) pos += 2;
    pos += 2;
    if (trim) pos += leftTrimLength(input, pos);
    ignore();
    return lexText;
  };
  const lexRightDelim = (): State => {
    const trim = hasRightTrimMarker(input, pos);
    if (trim) {
      pos += 2;
      ignore();
    }
    pos += 2;
    emit(I.RightDelim);
    if (trim) {
      pos += leftTrimLength(input, pos);
      ignore();
    }
    return lexText;
  };
  const lexInsideAction = (): State => {
    const [delim] = atRightDelim();
    if (delim) {
      if (parenDepth === 0) return lexRightDelim;
      return errorf('unclosed left paren');
    }
    const r = next();
    if (r === EOF) return errorf('unclosed action');
    if (isSpace(r)) {
      backup();
      return lexSpace;
    }
    const c = String.fromCodePoint(r);
    switch (c) {
      case '=':
        emit(I.Assign);
        return lexInsideAction;
      case ':':
        if (next() !== 0x3d) return errorf('expected :=');
        emit(I.Declare);
        return lexInsideAction;
      case '|':
        emit(I.Pipe);
        return lexInsideAction;
      case '"':
        return lexQuote;
      case '`':
        return lexRawQuote;
      case '$':
        return lexVariable;
      case "'":
        return lexChar;
      case '(':
        emit(I.LeftParen);
        parenDepth++;
        return lexInsideAction;
      case ')':
        parenDepth--;
        if (parenDepth < 0) return errorf('unexpected right paren');
        emit(I.RightParen);
        return lexInsideAction;
    }
    if (c === '.') {
      if (pos < input.length) {
        const d = input[pos];
        if (d < '0' || d > '9') return () => lexFieldOrVariable(I.Field);
      }
      backup();
      return lexNumber;
    }
    if (c === '+' || c === '-' || (c >= '0' && c <= '9')) {
      backup();
      return lexNumber;
    }
    if (isAlphaNumeric(r)) {
      backup();
      return lexIdentifier;
    }
    if (r <= 0x7f && isPrint(r)) {
      emit(I.Char);
      return lexInsideAction;
    }
    return errorf(`unrecognized character in action: ${fmtU(r)}`);
  };
  const lexSpace = (): State => {
    let numSpaces = 0;
    while (isSpace(peek())) {
      next();
      numSpaces++;
    }
    if (hasRightTrimMarker(input, pos - 1) && input.startsWith('}}', pos + 1)) {
      backup();
      if (numSpaces === 1) return lexRightDelim;
    }
    emit(I.Space);
    return lexInsideAction;
  };
  const lexIdentifier = (): State => {
    for (;;) {
      const r = next();
      if (isAlphaNumeric(r)) continue;
      backup();
      const word = input.slice(start, pos);
      if (!atTerminator()) return errorf(`bad character ${fmtU(r)}`);
      const kw = KEYWORDS.get(word);
      if (kw !== undefined && kw > I.Keyword) emit(kw);
      else if (word[0] === '.') emit(I.Field);
      else if (word === 'true' || word === 'false') emit(I.Bool);
      else emit(I.Identifier);
      return lexInsideAction;
    }
  };
  const lexVariable = (): State => {
    if (atTerminator()) {
      emit(I.Variable);
      return lexInsideAction;
    }
    return lexFieldOrVariable(I.Variable);
  };
  const lexFieldOrVariable = (typ: ItemType): State => {
    if (atTerminator()) {
      emit(typ === I.Variable ? I.Variable : I.Dot);
      return lexInsideAction;
    }
    let r: number;
    for (;;) {
      r = next();
      if (!isAlphaNumeric(r)) {
        backup();
        break;
      }
    }
    if (!atTerminator()) return errorf(`bad character ${fmtU(r)}`);
    emit(typ);
    return lexInsideAction;
  };
  const lexChar = (): State => {
    for (;;) {
      const r = next();
      if (r === 0x5c) {
        const r2 = next();
        if (r2 !== EOF && r2 !== 10) continue;
        return errorf('unterminated character constant');
      }
      if (r === EOF || r === 10) return errorf('unterminated character constant');
      if (r === 0x27) break;
    }
    emit(I.CharConstant);
    return lexInsideAction;
  };
  const scanNumber = (): boolean => {
    accept('+-');
    let digits = '0123456789_';
    if (accept('0')) {
      if (accept('xX')) digits = '0123456789abcdefABCDEF_';
      else if (accept('oO')) digits = '01234567_';
      else if (accept('bB')) digits = '01_';
    }
    acceptRun(digits);
    if (accept('.')) acceptRun(digits);
    if (digits.length === 11 && accept('eE')) {
      accept('+-');
      acceptRun('0123456789_');
    }
    if (digits.length === 23 && accept('pP')) {
      accept('+-');
      acceptRun('0123456789_');
    }
    accept('i');
    if (isAlphaNumeric(peek())) {
      next();
      return false;
    }
    return true;
  };
  const lexNumber = (): State => {
    if (!scanNumber()) return errorf(`bad number syntax: ${goQuote(input.slice(start, pos))}`);
    const sign = peek();
    if (sign === 0x2b || sign === 0x2d) {
      if (!scanNumber() || input[pos - 1] !== 'i') return errorf(`bad number syntax: ${goQuote(input.slice(start, pos))}`);
      emit(I.Complex);
      return lexInsideAction;
    }
    emit(I.Number);
    return lexInsideAction;
  };
  const lexQuote = (): State => {
    for (;;) {
      const r = next();
      if (r === 0x5c) {
        const r2 = next();
        if (r2 !== EOF && r2 !== 10) continue;
        return errorf('unterminated quoted string');
      }
      if (r === EOF || r === 10) return errorf('unterminated quoted string');
      if (r === 0x22) break;
    }
    emit(I.String);
    return lexInsideAction;
  };
  const lexRawQuote = (): State => {
    for (;;) {
      const r = next();
      if (r === EOF) return errorf('unterminated raw quoted string');
      if (r === 0x60) break;
    }
    emit(I.RawString);
    return lexInsideAction;
  };

  let state: State = lexText;
  while (state) state = state();
  return items;
}

function trimRight(s: string): string {
  let end = s.length;
  while (end > 0 && SPACE_CHARS.includes(s[end - 1])) end--;
  return s.slice(0, end);
}

function leftTrimLength(s: string, i: number): number {
  let j = i;
  while (j < s.length && SPACE_CHARS.includes(s[j])) j++;
  return j - i;
}

function itemString(it: Item): string {
  if (it.typ === I.EOF) return 'EOF';
  if (it.typ === I.Error) return it.val;
  if (it.typ > I.Keyword) return `<${it.val}>`;
  const runes = [...it.val];
  if (runes.length > 10) return goQuote(runes.slice(0, 10).join('')) + '...';
  return goQuote(it.val);
}

// ---------------------------------------------------------------------------
// Parse tree

interface ListNode { kind: 'list'; pos: number; nodes: Node[] }
interface TextNode { kind: 'text'; pos: number; text: string }
interface ActionNode { kind: 'action'; pos: number; pipe: PipeNode }
interface BranchNode { kind: 'if' | 'with' | 'range'; pos: number; pipe: PipeNode; list: ListNode; elseList: ListNode | null }
interface LoopNode { kind: 'break' | 'continue'; pos: number }
interface TemplateNode { kind: 'template'; pos: number; name: string; pipe: PipeNode | null }
interface EndNode { kind: 'end'; pos: number }
interface ElseNode { kind: 'else'; pos: number }
type Node = ListNode | TextNode | ActionNode | BranchNode | LoopNode | TemplateNode | EndNode | ElseNode;

interface PipeNode { kind: 'pipe'; pos: number; isAssign: boolean; decl: VariableNode[]; cmds: CommandNode[] }
interface CommandNode { kind: 'command'; pos: number; args: ArgNode[] }
interface FieldNode { kind: 'field'; pos: number; ident: string[] }
interface ChainNode { kind: 'chain'; pos: number; node: ArgNode; field: string[] }
interface IdentifierNode { kind: 'identifier'; pos: number; ident: string }
interface VariableNode { kind: 'variable'; pos: number; ident: string[] }
interface DotNode { kind: 'dot'; pos: number }
interface NilNode { kind: 'nil'; pos: number }
interface BoolNode { kind: 'bool'; pos: number; value: boolean }
interface NumberNode {
  kind: 'number'; pos: number; text: string;
  isInt: boolean; isUint: boolean; isFloat: boolean; int: number; float: number;
}
interface StringNode { kind: 'string'; pos: number; quoted: string; text: string }
type ArgNode = FieldNode | ChainNode | IdentifierNode | VariableNode | DotNode | NilNode | BoolNode | NumberNode | StringNode | PipeNode;
type AnyNode = Node | ArgNode | CommandNode;

function nodeString(n: AnyNode): string {
  switch (n.kind) {
    case 'list': return n.nodes.map(nodeString).join('');
    case 'text': return n.text;
    case 'action': return `{{${nodeString(n.pipe)}}}`;
    case 'if': case 'with': case 'range': {
      let s = `{{${n.kind} ${nodeString(n.pipe)}}}${nodeString(n.list)}`;
      if (n.elseList) s += `{{else}}${nodeString(n.elseList)}`;
      return s + '{{end}}';
    }
    case 'break': return '{{break}}';
    case 'continue': return '{{continue}}';
    case 'template': return n.pipe ? `{{template ${goQuote(n.name)} ${nodeString(n.pipe)}}}` : `{{template ${goQuote(n.name)}}}`;
    case 'end': return '{{end}}';
    case 'else': return '{{else}}';
    case 'pipe': {
      let s = '';
      if (n.decl.length > 0) s = n.decl.map(nodeString).join(', ') + (n.isAssign ? ' = ' : ' := ');
      return s + n.cmds.map(nodeString).join(' | ');
    }
    case 'command': return n.args.map((a) => (a.kind === 'pipe' ? `(${nodeString(a)})` : nodeString(a))).join(' ');
    case 'field': return n.ident.map((i) => '.' + i).join('');
    case 'chain': {
      const base = n.node.kind === 'pipe' ? `(${nodeString(n.node)})` : nodeString(n.node);
      return base + n.field.map((f) => '.' + f).join('');
    }
    case 'identifier': return n.ident;
    case 'variable': return n.ident.join('.');
    case 'dot': return '.';
    case 'nil': return 'nil';
    case 'bool': return n.value ? 'true' : 'false';
    case 'number': return n.text;
    case 'string': return n.quoted;
  }
}

// ---------------------------------------------------------------------------
// Number literals (strconv.ParseInt/ParseUint/ParseFloat with base 0)

function underscoreOK(s0: string): boolean {
  let s = s0;
  let saw = '^';
  let i = 0;
  if (s.length >= 1 && (s[0] === '-' || s[0] === '+')) s = s.slice(1);
  let isHex = false;
  if (s.length >= 2 && s[0] === '0' && 'boxBOX'.includes(s[1])) {
    i = 2;
    saw = '0';
    isHex = s[1] === 'x' || s[1] === 'X';
  }
  for (; i < s.length; i++) {
    const c = s[i];
    if ((c >= '0' && c <= '9') || (isHex && /[a-fA-F]/.test(c))) {
      saw = '0';
      continue;
    }
    if (c === '_') {
      if (saw !== '0') return false;
      saw = '_';
      continue;
    }
    if (saw === '_') return false;
    saw = '!';
  }
  return saw !== '_';
}

function parseGoInt(text: string, unsigned: boolean): bigint | null {
  let s = text;
  let neg = false;
  if (s[0] === '+' || s[0] === '-') {
    if (unsigned) return null;
    neg = s[0] === '-';
    s = s.slice(1);
  }
  let base = 10;
  let body = s;
  if (s.length >= 2 && s[0] === '0') {
    const p = s[1].toLowerCase();
    if (p === 'x') [base, body] = [16, s.slice(2)];
    else if (p === 'o') [base, body] = [8, s.slice(2)];
    else if (p === 'b') [base, body] = [2, s.slice(2)];
    else [base, body] = [8, s.slice(1)];
  }
  if (body.includes('_') && !underscoreOK(s)) return null;
  body = body.replaceAll('_', '');
  const re = base === 2 ? /^[01]+$/ : base === 8 ? /^[0-7]+$/ : base === 10 ? /^[0-9]+$/ : /^[0-9a-fA-F]+$/;
  if (!re.test(body)) return null;
  let v = 0n;
  for (const ch of body) v = v * BigInt(base) + BigInt(parseInt(ch, 16));
  if (neg) v = -v;
  if (unsigned ? v > 0xffffffffffffffffn : v > 0x7fffffffffffffffn || v < -0x8000000000000000n) return null;
  return v;
}

function parseGoFloat(text: string): number | null {
  if (text.includes('_') && !underscoreOK(text)) return null;
  const s = text.replaceAll('_', '');
  if (/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) {
    const v = Number(s);
    return Number.isFinite(v) ? v : null;
  }
  const m = /^([+-]?)0[xX]([0-9a-fA-F]*)(?:\.([0-9a-fA-F]*))?[pP]([+-]?\d+)$/.exec(s);
  if (m && (m[2] + (m[3] ?? '')).length > 0) {
    const frac = m[3] ?? '';
    const mant = BigInt('0x' + (m[2] + frac || '0'));
    const v = Number(mant) * 2 ** (Number(m[4]) - 4 * frac.length);
    if (!Number.isFinite(v)) return null;
    return m[1] === '-' ? -v : v;
  }
  return null;
}

function newNumber(pos: number, text: string, typ: ItemType): NumberNode {
  const n: NumberNode = { kind: 'number', pos, text, isInt: false, isUint: false, isFloat: false, int: 0, float: 0 };
  if (typ === I.CharConstant) {
    const u = unquoteChar(text, 1, "'");
    if (!u) throw new Error('invalid syntax');
    if (text.slice(u.next) !== "'") throw new Error(`malformed character constant: ${text}`);
    n.int = n.float = u.value;
    n.isInt = n.isUint = n.isFloat = true;
    return n;
  }
  if (typ === I.Complex || text.endsWith('i')) throw new Error(`complex number constants are not supported: ${goQuote(text)}`);
  const u = parseGoInt(text, true);
  if (u !== null) n.isUint = true;
  const i = parseGoInt(text, false);
  if (i !== null) {
    n.isInt = true;
    n.int = Number(i);
    if (i === 0n) n.isUint = true;
  }
  if (n.isInt) {
    n.isFloat = true;
    n.float = n.int;
  } else if (n.isUint) {
    n.isFloat = true;
    n.float = Number(u);
  } else {
    const f = parseGoFloat(text);
    if (f !== null) {
      if (!/[.eEpP]/.test(text)) throw new Error(`integer overflow: ${goQuote(text)}`);
      n.isFloat = true;
      n.float = f;
      if (Number.isInteger(f) && Math.abs(f) < 2 ** 63) {
        n.isInt = true;
        n.int = f;
      }
      if (Number.isInteger(f) && f >= 0 && f < 2 ** 64) n.isUint = true;
    }
  }
  if (!n.isInt && !n.isUint && !n.isFloat) throw new Error(`illegal number syntax: ${goQuote(text)}`);
  return n;
}

// ---------------------------------------------------------------------------
// Parser

class TokenStream {
  readonly items: Item[];
  i = 0;
  maxFetched = 0;
  constructor(items: Item[]) {
    this.items = items;
  }
  #at(i: number): Item {
    return this.items[Math.min(i, this.items.length - 1)];
  }
  next(): Item {
    const it = this.#at(this.i);
    if (this.i > this.maxFetched) this.maxFetched = this.i;
    this.i++;
    return it;
  }
  backup(): void {
    this.i--;
  }
  peek(): Item {
    const it = this.next();
    this.backup();
    return it;
  }
  nextNonSpace(): Item {
    let it: Item;
    do it = this.next();
    while (it.typ === I.Space);
    return it;
  }
  peekNonSpace(): Item {
    const it = this.nextNonSpace();
    this.backup();
    return it;
  }
  /** the line of the most recently lexed token (Go's t.token[0].line) */
  get line(): number {
    return this.#at(this.maxFetched).line;
  }
}

class Parser {
  readonly #ts: TokenStream;
  readonly #trees: Map<string, ListNode>;
  readonly #funcs: ReadonlyMap<string, FuncDef>;
  #vars: string[] = ['$'];
  #rangeDepth = 0;
  #actionLine = 0;

  constructor(ts: TokenStream, trees: Map<string, ListNode>, funcs: ReadonlyMap<string, FuncDef>) {
    this.#ts = ts;
    this.#trees = trees;
    this.#funcs = funcs;
  }

  #errorf(msg: string): never {
    throw new ParseError(`template: :${this.#ts.line}: ${msg}`);
  }

  #expect(typ: ItemType, context: string): Item {
    const token = this.#ts.nextNonSpace();
    if (token.typ !== typ) this.#unexpected(token, context);
    return token;
  }

  #unexpected(token: Item, context: string): never {
    if (token.typ === I.Error) {
      let extra = '';
      if (this.#actionLine !== 0 && this.#actionLine !== token.line) {
        extra = ` in action started at :${this.#actionLine}`;
        if (token.val.endsWith(' action')) extra = extra.slice(' in action'.length);
      }
      this.#errorf(`${itemString(token)}${extra}`);
    }
    this.#errorf(`unexpected ${itemString(token)} in ${context}`);
  }

  #add(name: string, root: ListNode): void {
    const existing = this.#trees.get(name);
    if (!existing || isEmptyTree(existing)) {
      this.#trees.set(name, root);
      return;
    }
    if (!isEmptyTree(root)) this.#errorf(`template: multiple definition of template ${goQuote(name)}`);
  }

  /** Parses the top-level template (and any {{define}}s) into the tree set. */
  parse(): void {
    const ts = this.#ts;
    const root: ListNode = { kind: 'list', pos: ts.peek().pos, nodes: [] };
    while (ts.peek().typ !== I.EOF) {
      if (ts.peek().typ === I.LeftDelim) {
        const mark = ts.i;
        ts.next();
        if (ts.nextNonSpace().typ === I.Define) {
          new Parser(ts, this.#trees, this.#funcs).#parseDefinition();
          continue;
        }
        ts.i = mark;
      }
      const n = this.#textOrAction();
      if (n.kind === 'end' || n.kind === 'else') this.#errorf(`unexpected ${nodeString(n)}`);
      root.nodes.push(n);
    }
    this.#add('', root);
  }

  #parseDefinition(): void {
    const context = 'define clause';
    const token = this.#ts.nextNonSpace();
    if (token.typ !== I.String && token.typ !== I.RawString) this.#unexpected(token, context);
    const name = goUnquote(token.val);
    if (name === null) this.#errorf('invalid syntax');
    this.#expect(I.RightDelim, context);
    const [root, end] = this.#itemList();
    if (end.kind !== 'end') this.#errorf(`unexpected ${nodeString(end)} in ${context}`);
    this.#add(name, root);
  }

  #itemList(): [ListNode, Node] {
    const list: ListNode = { kind: 'list', pos: this.#ts.peekNonSpace().pos, nodes: [] };
    while (this.#ts.peekNonSpace().typ !== I.EOF) {
      const n = this.#textOrAction();
      if (n.kind === 'end' || n.kind === 'else') return [list, n];
      list.nodes.push(n);
    }
    this.#errorf('unexpected EOF');
  }

  #textOrAction(): Node {
    const token = this.#ts.nextNonSpace();
    if (token.typ === I.Text) return { kind: 'text', pos: token.pos, text: token.val };
    if (token.typ === I.LeftDelim) {
      this.#actionLine = token.line;
      try {
        return this.#action();
      } finally {
        this.#actionLine = 0;
      }
    }
    this.#unexpected(token, 'input');
  }

  #action(): Node {
    const ts = this.#ts;
    const token = ts.nextNonSpace();
    switch (token.typ) {
      case I.Block: return this.#blockControl();
      case I.Break: return this.#loopControl('break');
      case I.Continue: return this.#loopControl('continue');
      case I.Else: return this.#elseControl();
      case I.End: return { kind: 'end', pos: this.#expect(I.RightDelim, 'end').pos };
      case I.If: return this.#control('if');
      case I.Range: return this.#control('range');
      case I.TemplateKw: return this.#templateControl();
      case I.With: return this.#control('with');
    }
    ts.backup();
    const pos = ts.peek().pos;
    return { kind: 'action', pos, pipe: this.#pipeline('command', I.RightDelim) };
  }

  #loopControl(kind: 'break' | 'continue'): LoopNode {
    const pos = this.#ts.items[this.#ts.i - 1].pos;
    const token = this.#ts.nextNonSpace();
    if (token.typ !== I.RightDelim) this.#unexpected(token, `{{${kind}}}`);
    if (this.#rangeDepth === 0) this.#errorf(`{{${kind}}} outside {{range}}`);
    return { kind, pos };
  }

  #pipeline(context: string, end: ItemType): PipeNode {
    const ts = this.#ts;
    const pipe: PipeNode = { kind: 'pipe', pos: ts.peekNonSpace().pos, isAssign: false, decl: [], cmds: [] };
    decls: for (;;) {
      const v = ts.peekNonSpace();
      if (v.typ !== I.Variable) break;
      const mark = ts.i;
      ts.next();
      const nx = ts.peekNonSpace();
      if (nx.typ === I.Assign || nx.typ === I.Declare) {
        pipe.isAssign = nx.typ === I.Assign;
        ts.nextNonSpace();
        pipe.decl.push({ kind: 'variable', pos: v.pos, ident: [v.val] });
        this.#vars.push(v.val);
      } else if (nx.typ === I.Char && nx.val === ',') {
        ts.nextNonSpace();
        pipe.decl.push({ kind: 'variable', pos: v.pos, ident: [v.val] });
        this.#vars.push(v.val);
        if (context === 'range' && pipe.decl.length < 2) {
          const p = ts.peekNonSpace().typ;
          if (p === I.Variable || p === I.RightDelim || p === I.RightParen) continue decls;
          this.#errorf('range can only initialize variables');
        }
        this.#errorf(`too many declarations in ${context}`);
      } else {
        ts.i = mark; // not a declaration: $x is an operand
      }
      break;
    }
    for (;;) {
      const token = ts.nextNonSpace();
      if (token.typ === end) {
        this.#checkPipeline(pipe, context);
        return pipe;
      }
      switch (token.typ) {
        case I.Bool: case I.CharConstant: case I.Complex: case I.Dot: case I.Field: case I.Identifier:
        case I.Number: case I.Nil: case I.RawString: case I.String: case I.Variable: case I.LeftParen:
          ts.backup();
          pipe.cmds.push(this.#command());
          break;
        default:
          this.#unexpected(token, context);
      }
    }
  }

  #checkPipeline(pipe: PipeNode, context: string): void {
    if (pipe.cmds.length === 0) this.#errorf(`missing value for ${context}`);
    pipe.cmds.slice(1).forEach((c, i) => {
      const k = c.args[0].kind;
      if (k === 'bool' || k === 'dot' || k === 'nil' || k === 'number' || k === 'string') {
        this.#errorf(`non executable command in pipeline stage ${i + 2}`);
      }
    });
  }

  #control(context: 'if' | 'with' | 'range'): BranchNode {
    const ts = this.#ts;
    const nvars = this.#vars.length;
    try {
      const pipe = this.#pipeline(context, I.RightDelim);
      if (context === 'range') this.#rangeDepth++;
      const [list, next] = this.#itemList();
      if (context === 'range') this.#rangeDepth--;
      let elseList: ListNode | null = null;
      if (next.kind === 'else') {
        if (context === 'if' && ts.peek().typ === I.If) {
          ts.next();
          elseList = { kind: 'list', pos: next.pos, nodes: [this.#control('if')] };
        } else if (context === 'with' && ts.peek().typ === I.With) {
          ts.next();
          elseList = { kind: 'list', pos: next.pos, nodes: [this.#control('with')] };
        } else {
          const [l, n2] = this.#itemList();
          if (n2.kind !== 'end') this.#errorf(`expected end; found ${nodeString(n2)}`);
          elseList = l;
        }
      }
      return { kind: context, pos: pipe.pos, pipe, list, elseList };
    } finally {
      this.#vars.length = nvars;
    }
  }

  #elseControl(): ElseNode {
    const p = this.#ts.peekNonSpace();
    if (p.typ === I.If || p.typ === I.With) return { kind: 'else', pos: p.pos };
    return { kind: 'else', pos: this.#expect(I.RightDelim, 'else').pos };
  }

  #templateName(token: Item, context: string): string {
    if (token.typ !== I.String && token.typ !== I.RawString) this.#unexpected(token, context);
    const name = goUnquote(token.val);
    if (name === null) this.#errorf('invalid syntax');
    return name;
  }

  #blockControl(): TemplateNode {
    const context = 'block clause';
    const token = this.#ts.nextNonSpace();
    const name = this.#templateName(token, context);
    const pipe = this.#pipeline(context, I.RightDelim);
    const sub = new Parser(this.#ts, this.#trees, this.#funcs);
    const [root, end] = sub.#itemList();
    if (end.kind !== 'end') this.#errorf(`unexpected ${nodeString(end)} in ${context}`);
    sub.#add(name, root);
    return { kind: 'template', pos: token.pos, name, pipe };
  }

  #templateControl(): TemplateNode {
    const context = 'template clause';
    const token = this.#ts.nextNonSpace();
    const name = this.#templateName(token, context);
    let pipe: PipeNode | null = null;
    if (this.#ts.nextNonSpace().typ !== I.RightDelim) {
      this.#ts.backup();
      pipe = this.#pipeline(context, I.RightDelim);
    }
    return { kind: 'template', pos: token.pos, name, pipe };
  }

  #command(): CommandNode {
    const ts = this.#ts;
    const cmd: CommandNode = { kind: 'command', pos: ts.peekNonSpace().pos, args: [] };
    for (;;) {
      ts.peekNonSpace();
      const operand = this.#operand();
      if (operand) cmd.args.push(operand);
      const token = ts.next();
      if (token.typ === I.Space) continue;
      if (token.typ === I.RightDelim || token.typ === I.RightParen) ts.backup();
      else if (token.typ !== I.Pipe) this.#unexpected(token, 'operand');
      break;
    }
    if (cmd.args.length === 0) this.#errorf('empty command');
    return cmd;
  }

  #operand(): ArgNode | null {
    const ts = this.#ts;
    const node = this.#term();
    if (!node) return null;
    if (ts.peek().typ !== I.Field) return node;
    const pos = ts.peek().pos;
    const fields: string[] = [];
    while (ts.peek().typ === I.Field) fields.push(ts.next().val.slice(1));
    switch (node.kind) {
      case 'field': return { kind: 'field', pos, ident: [...node.ident, ...fields] };
      case 'variable': return { kind: 'variable', pos, ident: [...node.ident, ...fields] };
      case 'bool': case 'string': case 'number': case 'nil': case 'dot':
        this.#errorf(`unexpected . after term ${goQuote(nodeString(node))}`);
    }
    return { kind: 'chain', pos, node, field: fields };
  }

  #term(): ArgNode | null {
    const ts = this.#ts;
    const token = ts.nextNonSpace();
    switch (token.typ) {
      case I.Identifier:
        if (!this.#funcs.has(token.val)) this.#errorf(`function ${goQuote(token.val)} not defined`);
        return { kind: 'identifier', pos: token.pos, ident: token.val };
      case I.Dot: return { kind: 'dot', pos: token.pos };
      case I.Nil: return { kind: 'nil', pos: token.pos };
      case I.Variable: {
        const ident = token.val.split('.');
        if (!this.#vars.includes(ident[0])) this.#errorf(`undefined variable ${goQuote(ident[0])}`);
        return { kind: 'variable', pos: token.pos, ident };
      }
      case I.Field: return { kind: 'field', pos: token.pos, ident: token.val.slice(1).split('.') };
      case I.Bool: return { kind: 'bool', pos: token.pos, value: token.val === 'true' };
      case I.CharConstant: case I.Complex: case I.Number:
        try {
          return newNumber(token.pos, token.val, token.typ);
        } catch (e) {
          this.#errorf((e as Error).message);
        }
      case I.LeftParen: return this.#pipeline('parenthesized pipeline', I.RightParen);
      case I.String: case I.RawString: {
        const text = goUnquote(token.val);
        if (text === null) this.#errorf('invalid syntax');
        return { kind: 'string', pos: token.pos, quoted: token.val, text };
      }
    }
    ts.backup();
    return null;
  }
}

function isEmptyTree(n: Node): boolean {
  switch (n.kind) {
    case 'list': return n.nodes.every(isEmptyTree);
    case 'text': return n.text.trim() === '';
    default: return false;
  }
}

// ---------------------------------------------------------------------------
// Functions

/**
 * Parameter types, as far as they matter for argument checking:
 * 'value' is reflect.Value (anything, including the invalid value), 'any' is
 * interface{} (invalid becomes nil), 'strings' is []string.
 */
type PType = 'value' | 'any' | 'string' | 'int' | 'bool' | 'strings';

interface FuncDef {
  params: PType[];
  variadic?: PType;
  special?: 'and' | 'or' | 'call';
  fn(args: unknown[], calleeName: string): unknown;
}

const PTYPE_NAMES: Record<PType, string> = {
  value: 'reflect.Value', any: 'interface {}', string: 'string', int: 'int', bool: 'bool', strings: '[]string',
};

function basicKind(v: unknown): 'bool' | 'int' | 'float' | 'string' | null {
  if (typeof v === 'boolean') return 'bool';
  if (typeof v === 'string') return 'string';
  if (isInt(v) || typeof v === 'bigint') return 'int';
  if (isFloat(v)) return 'float';
  return null;
}

/** reflect.Kind-like classification for eq's non-basic comparison. */
function refKind(v: unknown): string {
  if (v === undefined || v === null) return 'invalid';
  if (Array.isArray(v)) return 'slice';
  if (typeof v === 'function') return 'func';
  return basicKind(v) ?? 'map';
}

function eq(arg1: unknown, ...rest: unknown[]): boolean {
  const a1 = deref(arg1);
  if (rest.length === 0) throw new FuncError('missing argument for comparison');
  const k1 = basicKind(a1);
  for (const r of rest) {
    const a2 = deref(r);
    const k2 = basicKind(a2);
    let truth = false;
    if (k1 !== k2) {
      if (a1 !== undefined && a2 !== undefined) throw new FuncError('incompatible types for comparison');
    } else if (k1 === 'float') {
      truth = floatOf(a1) === floatOf(a2);
    } else if (k1 !== null) {
      truth = a1 === a2 || (typeof a1 === 'bigint' || typeof a2 === 'bigint' ? BigInt(a1 as number) === BigInt(a2 as number) : false);
    } else {
      const ka = refKind(a1);
      const kb = refKind(a2);
      if (ka !== kb && ka !== 'invalid' && kb !== 'invalid') {
        throw new FuncError(`non-comparable types ${sprintVerb(a1, 's')}: ${typeName(a1)}, ${typeName(a2)}: ${sprintV(a2)}`);
      }
      if (a1 === undefined || a2 === undefined) truth = a1 === a2;
      else throw new FuncError(`non-comparable type ${sprintVerb(a2, 's')}: ${typeName(a2)}`);
    }
    if (truth) return true;
  }
  return false;
}

function lt(arg1: unknown, arg2: unknown): boolean {
  const a1 = deref(arg1);
  const a2 = deref(arg2);
  const k1 = basicKind(a1);
  const k2 = basicKind(a2);
  if (k1 === null || k2 === null) throw new FuncError('invalid type for comparison');
  if (k1 !== k2) throw new FuncError('incompatible types for comparison');
  switch (k1) {
    case 'bool': throw new FuncError('invalid type for comparison');
    case 'float': return floatOf(a1) < floatOf(a2);
    case 'int': return (a1 as number) < (a2 as number);
    case 'string': return compareStrings(a1 as string, a2 as string) < 0;
  }
}

function le(a: unknown, b: unknown): boolean {
  return lt(a, b) || eq(a, b);
}

/** indexArg: an integer index within [0, cap]. */
function indexArg(index: unknown, cap: number): number {
  const v = deref(index);
  if (v === undefined) throw new FuncError('cannot index slice/array with nil');
  if (!isInt(v)) throw new FuncError(`cannot index slice/array with type ${typeName(v)}`);
  if (v < 0 || v > cap) throw new FuncError(`index out of range: ${v}`);
  return v;
}

function index(item: unknown, ...indexes: unknown[]): unknown {
  let cur = deref(item);
  if (cur === undefined) throw new FuncError('index of untyped nil');
  for (const ix of indexes) {
    if (cur === null) throw new FuncError('index of nil pointer');
    if (typeof cur === 'string' || Array.isArray(cur)) {
      const len = typeof cur === 'string' ? byteLength(cur) : cur.length;
      const x = indexArg(ix, len);
      if (x === len) throw new FuncError(`reflect: ${typeof cur === 'string' ? 'string' : 'slice'} index out of range`);
      cur = typeof cur === 'string' ? utf8(cur)[x] : cur[x];
    } else if (isMap(cur)) {
      const k = deref(ix);
      if (k === undefined) throw new FuncError('value is nil; should be of type string');
      if (typeof k !== 'string') throw new FuncError(`value has type ${typeName(k)}; should be string`);
      const v = Object.hasOwn(cur, k) ? cur[k] : undefined;
      cur = v === undefined ? null : v;
    } else {
      throw new FuncError(`can't index item of type ${typeName(cur)}`);
    }
  }
  return cur;
}

function slice(item: unknown, ...indexes: unknown[]): unknown {
  const v = deref(item);
  if (v === undefined) throw new FuncError('slice of untyped nil');
  if (indexes.length > 3) throw new FuncError(`too many slice indexes: ${indexes.length}`);
  let cap: number;
  if (typeof v === 'string') {
    if (indexes.length === 3) throw new FuncError('cannot 3-index slice a string');
    cap = byteLength(v);
  } else if (Array.isArray(v)) {
    cap = v.length;
  } else {
    throw new FuncError(`can't slice item of type ${typeName(v)}`);
  }
  const idx = [0, cap, 0];
  indexes.forEach((ix, i) => (idx[i] = indexArg(ix, cap)));
  if (idx[0] > idx[1]) throw new FuncError(`invalid slice index: ${idx[0]} > ${idx[1]}`);
  if (indexes.length === 3 && idx[1] > idx[2]) throw new FuncError(`invalid slice index: ${idx[1]} > ${idx[2]}`);
  if (typeof v === 'string') return decodeUTF8(utf8(v).subarray(idx[0], idx[1]));
  return v.slice(idx[0], idx[1]);
}

function length(item: unknown): number {
  if (item === undefined) throw new FuncError('reflect: call of reflect.Value.Type on zero Value');
  if (item === null) throw new FuncError('len of nil pointer');
  if (typeof item === 'string') return byteLength(item);
  if (Array.isArray(item)) return item.length;
  if (isMap(item)) return sortedKeys(item).length;
  throw new FuncError(`len of type ${typeName(item)}`);
}

function call(fn: unknown, calleeName: string, args: unknown[]): unknown {
  const f = deref(fn);
  if (f === undefined) throw new FuncError('call of nil');
  if (typeof f !== 'function') throw new FuncError(`non-function ${calleeName} of type ${typeName(f)}`);
  return (f as (...a: unknown[]) => unknown)(...args.map(deref));
}

/** text/template's evalArgs: fmt.Sprint with nil arguments shown as <no value>. */
function evalArgs(args: unknown[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args.map((a) => (a === null || a === undefined ? '<no value>' : a)));
}

function htmlEscape(s: string): string {
  return s.replace(/[\0"'&<>]/g, (c) =>
    c === '\0' ? '\uFFFD' : c === '"' ? '&#34;' : c === "'" ? '&#39;' : c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;');
}

function jsEscape(s: string): string {
  let out = '';
  for (const ch of s) {
    const r = ch.codePointAt(0)!;
    switch (ch) {
      case '\\': out += '\\\\'; continue;
      case "'": out += "\\'"; continue;
      case '"': out += '\\"'; continue;
      case '<': out += '\\u003C'; continue;
      case '>': out += '\\u003E'; continue;
      case '&': out += '\\u0026'; continue;
      case '=': out += '\\u003D'; continue;
    }
    if (r < 0x20) out += '\\u00' + r.toString(16).toUpperCase().padStart(2, '0');
    else if (r < 0x80 || isPrint(r)) out += ch;
    else out += '\\u' + r.toString(16).toUpperCase().padStart(4, '0');
  }
  return out;
}

function urlQueryEscape(s: string): string {
  let out = '';
  for (const b of utf8(s)) {
    const c = String.fromCharCode(b);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Go's strings.Title: upper-cases the first letter of each word. */
function title(s: string): string {
  const isSeparator = (r: number): boolean => {
    if (r <= 0x7f) {
      const c = String.fromCharCode(r);
      return !/[0-9a-zA-Z_]/.test(c);
    }
    const ch = String.fromCodePoint(r);
    if (/[\p{L}\p{Nd}]/u.test(ch)) return false;
    return /\s/u.test(ch);
  };
  let prev = 0x20;
  let out = '';
  for (const ch of s) {
    const r = ch.codePointAt(0)!;
    out += isSeparator(prev) ? toTitleRune(ch) : ch;
    prev = r;
  }
  return out;
}

const TITLE_SPECIAL: Record<string, string> = {
  'Ǆ': 'ǅ', 'ǅ': 'ǅ', 'ǆ': 'ǅ', 'Ǉ': 'ǈ', 'ǈ': 'ǈ', 'ǉ': 'ǈ', 'Ǌ': 'ǋ', 'ǋ': 'ǋ', 'ǌ': 'ǋ', 'Ǳ': 'ǲ', 'ǲ': 'ǲ', 'ǳ': 'ǲ',
};
function toTitleRune(ch: string): string {
  return TITLE_SPECIAL[ch] ?? mapRune(ch, 'upper');
}

/** unicode.ToUpper / ToLower: one rune in, one rune out. */
function mapRune(ch: string, dir: 'upper' | 'lower'): string {
  if (dir === 'lower' && ch === 'İ') return 'i';
  const m = dir === 'upper' ? ch.toUpperCase() : ch.toLowerCase();
  return [...m].length === 1 ? m : ch;
}
const mapString = (s: string, dir: 'upper' | 'lower'): string => [...s].map((c) => mapRune(c, dir)).join('');

function split(s: string, sep: string): string[] {
  if (sep === '') return [...s];
  return s.split(sep);
}

function truncate(s: string, n: number): string {
  const b = utf8(s);
  if (b.length < n) return s;
  if (n < 0) throw new FuncError(`runtime error: slice bounds out of range [:${n}]`);
  return decodeUTF8(b.subarray(0, n));
}

function pad(s: string, prefix: number, suffix: number): string {
  if (s === '') return s;
  if (prefix < 0 || suffix < 0) throw new FuncError('strings: negative Repeat count');
  return ' '.repeat(prefix) + s + ' '.repeat(suffix);
}

const BUILTINS: [string, FuncDef][] = [
  ['and', { params: ['value'], variadic: 'value', special: 'and', fn: () => undefined }],
  ['or', { params: ['value'], variadic: 'value', special: 'or', fn: () => undefined }],
  ['not', { params: ['value'], fn: ([a]) => !isTrue(deref(a)) }],
  ['call', { params: ['value'], variadic: 'value', special: 'call', fn: ([f, ...rest], name) => call(f, name, rest) }],
  ['html', { params: [], variadic: 'any', fn: (a) => htmlEscape(evalArgs(a)) }],
  ['js', { params: [], variadic: 'any', fn: (a) => jsEscape(evalArgs(a)) }],
  ['urlquery', { params: [], variadic: 'any', fn: (a) => urlQueryEscape(evalArgs(a)) }],
  ['index', { params: ['value'], variadic: 'value', fn: ([item, ...ix]) => index(item, ...ix) }],
  ['slice', { params: ['value'], variadic: 'value', fn: ([item, ...ix]) => slice(item, ...ix) }],
  ['len', { params: ['value'], fn: ([a]) => length(a) }],
  ['print', { params: [], variadic: 'any', fn: (a) => sprint(a) }],
  ['printf', { params: ['string'], variadic: 'any', fn: ([f, ...a]) => sprintf(f as string, a) }],
  ['println', { params: [], variadic: 'any', fn: (a) => sprintln(a) }],
  ['eq', { params: ['value'], variadic: 'value', fn: ([a, ...b]) => eq(a, ...b) }],
  ['ne', { params: ['value', 'value'], fn: ([a, b]) => !eq(a, b) }],
  ['lt', { params: ['value', 'value'], fn: ([a, b]) => lt(a, b) }],
  ['le', { params: ['value', 'value'], fn: ([a, b]) => le(a, b) }],
  ['gt', { params: ['value', 'value'], fn: ([a, b]) => !le(a, b) }],
  ['ge', { params: ['value', 'value'], fn: ([a, b]) => !lt(a, b) }],
];

/** The docker CLI's template functions (docker/cli templates.basicFunctions). */
const DOCKER_FUNCS: [string, FuncDef][] = [
  ['json', { params: ['any'], fn: ([v]) => dockerJSON(v) }],
  ['split', { params: ['string', 'string'], fn: ([s, sep]) => split(s as string, sep as string) }],
  ['join', { params: ['strings', 'string'], fn: ([a, sep]) => (a as string[]).join(sep as string) }],
  ['title', { params: ['string'], fn: ([s]) => title(s as string) }],
  ['lower', { params: ['string'], fn: ([s]) => mapString(s as string, 'lower') }],
  ['upper', { params: ['string'], fn: ([s]) => mapString(s as string, 'upper') }],
  ['pad', { params: ['string', 'int', 'int'], fn: ([s, a, b]) => pad(s as string, a as number, b as number) }],
  ['truncate', { params: ['string', 'int'], fn: ([s, n]) => truncate(s as string, n as number) }],
];

/** docker's HeaderFunctions: keep the column titles intact. */
const HEADER_OVERRIDES: [string, FuncDef][] = [
  ['json', { params: ['string'], fn: ([v]) => v }],
  ['split', { params: ['string', 'string'], fn: ([v]) => v }],
  ['join', { params: ['string', 'string'], fn: ([v]) => v }],
  ['title', { params: ['string'], fn: ([v]) => v }],
  ['lower', { params: ['string'], fn: ([v]) => v }],
  ['upper', { params: ['string'], fn: ([v]) => v }],
  ['truncate', { params: ['string', 'int'], fn: ([v]) => v }],
];

const FUNCS: ReadonlyMap<string, FuncDef> = new Map([...BUILTINS, ...DOCKER_FUNCS]);
const HEADER_FUNCS: ReadonlyMap<string, FuncDef> = new Map([...BUILTINS, ...DOCKER_FUNCS, ...HEADER_OVERRIDES]);

// ---------------------------------------------------------------------------
// JSON (Go's encoding/json with SetEscapeHTML(false), as docker's `json` function)

class UnsupportedJSON extends Error {}

function jsonString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const r = ch.codePointAt(0)!;
    if (r < 0x20 || ch === '"' || ch === '\\') {
      switch (ch) {
        case '"': out += '\\"'; break;
        case '\\': out += '\\\\'; break;
        case '\b': out += '\\b'; break;
        case '\f': out += '\\f'; break;
        case '\n': out += '\\n'; break;
        case '\r': out += '\\r'; break;
        case '\t': out += '\\t'; break;
        default: out += '\\u00' + hex(r, 2);
      }
    } else if (r === 0x2028 || r === 0x2029) {
      out += '\\u' + hex(r, 4);
    } else if (r >= 0xd800 && r <= 0xdfff) {
      out += '\\ufffd';
    } else {
      out += ch;
    }
  }
  return out + '"';
}

function jsonFloat(n: number): string {
  if (!Number.isFinite(n)) throw new UnsupportedJSON();
  const abs = Math.abs(n);
  const f = abs !== 0 && (abs < 1e-6 || abs >= 1e21) ? 'e' : 'f';
  return formatFloat(n, f, -1).replace(/e([+-])0(\d)$/, 'e$1$2');
}

function toJSON(v: unknown): string {
  if (v === undefined || v === null) return 'null';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'bigint') return v.toString();
  if (isInt(v)) return Math.abs(v) < 1e21 ? String(v) : BigInt(v).toString();
  if (isFloat(v)) return jsonFloat(floatOf(v));
  if (typeof v === 'string') return jsonString(v);
  if (typeof v === 'function' || typeof v === 'symbol') throw new UnsupportedJSON();
  if (Array.isArray(v)) return '[' + v.map((e) => toJSON(e)).join(',') + ']';
  const withToJSON = v as { toJSON?: () => unknown };
  if (typeof withToJSON.toJSON === 'function') return toJSON(withToJSON.toJSON());
  const parts: string[] = [];
  for (const [k, val] of Object.entries(v)) {
    if (val === undefined || typeof val === 'function') continue;
    parts.push(jsonString(k) + ':' + toJSON(val));
  }
  return '{' + parts.join(',') + '}';
}

/** docker's `json`: compact, no HTML escaping, object keys in insertion order; "" if unencodable. */
function dockerJSON(v: unknown): string {
  try {
    return toJSON(v);
  } catch (e) {
    if (e instanceof UnsupportedJSON) return '';
    throw e;
  }
}

// ---------------------------------------------------------------------------
// fmt: Go's Sprint / Sprintln / Sprintf over the value model

interface Decimal {
  digits: string; // significant digits, no leading or trailing zeros ('' for zero)
  dp: number; // decimal point position
}

function trimZeros(d: Decimal): Decimal {
  const digits = d.digits.replace(/0+$/, '');
  return { digits, dp: digits === '' ? 0 : d.dp };
}

/** The exact decimal expansion of a finite, non-negative double. */
function exactDecimal(x: number): Decimal {
  if (x === 0) return { digits: '', dp: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const expBits = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  let e2: number;
  if (expBits === 0) e2 = -1074;
  else {
    mant |= 1n << 52n;
    e2 = expBits - 1075;
  }
  if (e2 >= 0) {
    const s = (mant << BigInt(e2)).toString();
    return trimZeros({ digits: s, dp: s.length });
  }
  const s = (mant * 5n ** BigInt(-e2)).toString();
  return trimZeros({ digits: s, dp: s.length + e2 });
}

/** The shortest decimal that round-trips (as Go's strconv with precision -1). */
function shortestDecimal(x: number): Decimal {
  if (x === 0) return { digits: '', dp: 0 };
  const [m, e] = x.toExponential().split('e');
  return trimZeros({ digits: m.replace('.', ''), dp: Number(e) + 1 });
}

/** Rounds to nd significant digits, half to even (the digits are exact). */
function roundDecimal(d: Decimal, nd: number): Decimal {
  if (nd < 0 || nd >= d.digits.length) return d;
  const up = d.digits[nd] === '5' && nd + 1 === d.digits.length ? nd > 0 && Number(d.digits[nd - 1]) % 2 === 1 : d.digits[nd] >= '5';
  if (!up) return trimZeros({ digits: d.digits.slice(0, nd), dp: d.dp });
  let i = nd - 1;
  while (i >= 0 && d.digits[i] === '9') i--;
  if (i < 0) return { digits: '1', dp: d.dp + 1 };
  return { digits: d.digits.slice(0, i) + String(Number(d.digits[i]) + 1), dp: d.dp };
}

function fmtE(neg: boolean, d: Decimal, prec: number, e: string): string {
  let s = neg ? '-' : '';
  s += d.digits.length > 0 ? d.digits[0] : '0';
  if (prec > 0) {
    s += '.';
    const m = Math.min(d.digits.length, prec + 1);
    let i = 1;
    if (i < m) {
      s += d.digits.slice(i, m);
      i = m;
    }
    for (; i <= prec; i++) s += '0';
  }
  let exp = d.digits.length === 0 ? 0 : d.dp - 1;
  s += e + (exp < 0 ? '-' : '+');
  exp = Math.abs(exp);
  return s + (exp < 10 ? '0' + exp : String(exp));
}

function fmtF(neg: boolean, d: Decimal, prec: number): string {
  let s = neg ? '-' : '';
  if (d.dp > 0) {
    let m = Math.min(d.digits.length, d.dp);
    s += d.digits.slice(0, m);
    for (; m < d.dp; m++) s += '0';
  } else {
    s += '0';
  }
  if (prec > 0) {
    s += '.';
    for (let i = 1; i <= prec; i++) {
      const j = d.dp + i - 1;
      s += j >= 0 && j < d.digits.length ? d.digits[j] : '0';
    }
  }
  return s;
}

/** strconv's %x for float64: hexadecimal mantissa and binary exponent. */
function formatHexFloat(neg: boolean, v: number, prec: number, fmt: string): string {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, v);
  const bits = view.getBigUint64(0);
  let exp = Number((bits >> 52n) & 0x7ffn);
  let mant = bits & ((1n << 52n) - 1n);
  if (exp === 0) exp++;
  else mant |= 1n << 52n;
  exp -= 1023;
  if (mant === 0n) exp = 0;
  mant <<= 8n; // leading 1 at bit 60
  while (mant !== 0n && (mant & (1n << 60n)) === 0n) {
    mant <<= 1n;
    exp--;
  }
  const mask60 = (1n << 60n) - 1n;
  if (prec >= 0 && prec < 15) {
    const shift = BigInt(prec * 4);
    const extra = (mant << shift) & mask60;
    mant >>= 60n - shift;
    if ((extra | (mant & 1n)) > 1n << 59n) mant++;
    mant <<= 60n - shift;
    if ((mant & (1n << 61n)) !== 0n) {
      mant >>= 1n;
      exp++;
    }
  }
  const digit = (d: bigint): string => (fmt === 'X' ? d.toString(16).toUpperCase() : d.toString(16));
  let s = (neg ? '-' : '') + '0' + fmt + String((mant >> 60n) & 1n);
  mant = (mant << 4n) & ((1n << 64n) - 1n);
  if ((prec < 0 && mant !== 0n) || prec > 0) {
    s += '.';
    for (let i = 0; prec < 0 ? mant !== 0n : i < prec; i++) {
      s += digit((mant >> 60n) & 15n);
      mant = (mant << 4n) & ((1n << 64n) - 1n);
    }
  }
  s += (fmt === 'X' ? 'P' : 'p') + (exp < 0 ? '-' : '+');
  exp = Math.abs(exp);
  return s + (exp < 100 ? String(exp).padStart(2, '0') : String(exp));
}

/** strconv.FormatFloat(v, fmt, prec, 64) for fmt in e E f g G x X. */
function formatFloat(v: number, fmt: string, prec: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  const neg = v < 0 || Object.is(v, -0);
  if (fmt === 'x' || fmt === 'X') return formatHexFloat(neg, Math.abs(v), prec, fmt);
  const a = Math.abs(v);
  const shortest = prec < 0;
  let d: Decimal;
  if (shortest) {
    d = shortestDecimal(a);
    if (fmt === 'e' || fmt === 'E') prec = Math.max(d.digits.length - 1, 0);
    else if (fmt === 'f') prec = Math.max(d.digits.length - d.dp, 0);
    else prec = d.digits.length;
  } else {
    d = exactDecimal(a);
    if (fmt === 'e' || fmt === 'E') d = roundDecimal(d, prec + 1);
    else if (fmt === 'f') d = roundDecimal(d, d.dp + prec);
    else {
      if (prec === 0) prec = 1;
      d = roundDecimal(d, prec);
    }
  }
  if (fmt === 'e' || fmt === 'E') return fmtE(neg, d, prec, fmt);
  if (fmt === 'f') return fmtF(neg, d, prec);
  let eprec = prec;
  if (eprec > d.digits.length && d.digits.length >= d.dp) eprec = d.digits.length;
  if (shortest) eprec = 6;
  const exp = d.dp - 1;
  if (exp < -4 || exp >= eprec) {
    if (prec > d.digits.length) prec = d.digits.length;
    return fmtE(neg, d, prec - 1, fmt === 'g' ? 'e' : 'E');
  }
  if (prec > d.dp) prec = d.digits.length;
  return fmtF(neg, d, Math.max(prec - d.dp, 0));
}

interface Flags {
  plus: boolean; minus: boolean; sharp: boolean; space: boolean; zero: boolean;
  plusV: boolean; sharpV: boolean;
  wid: number; widPresent: boolean; prec: number; precPresent: boolean;
}
const clearFlags = (): Flags => ({
  plus: false, minus: false, sharp: false, space: false, zero: false, plusV: false, sharpV: false,
  wid: 0, widPresent: false, prec: 0, precPresent: false,
});

class Printer {
  buf = '';
  f: Flags = clearFlags();

  #writePadding(n: number): void {
    if (n <= 0) return;
    this.buf += (this.f.zero && !this.f.minus ? '0' : ' ').repeat(n);
  }

  #pad(s: string): void {
    if (!this.f.widPresent || this.f.wid === 0) {
      this.buf += s;
      return;
    }
    const width = this.f.wid - runeCount(s);
    if (!this.f.minus) {
      this.#writePadding(width);
      this.buf += s;
    } else {
      this.buf += s;
      this.#writePadding(width);
    }
  }

  #padNoZero(s: string): void {
    const z = this.f.zero;
    this.f.zero = false;
    this.#pad(s);
    this.f.zero = z;
  }

  #truncate(s: string): string {
    if (!this.f.precPresent) return s;
    return [...s].slice(0, this.f.prec).join('');
  }

  badVerb(verb: string, v: unknown): void {
    this.buf += '%!' + verb + '(';
    if (v === null || v === undefined) this.buf += '<nil>';
    else {
      this.buf += typeName(v) + '=';
      this.printArg(v, 'v');
    }
    this.buf += ')';
  }

  printArg(arg: unknown, verb: string): void {
    if (arg === null || arg === undefined) {
      if (verb === 'T' || verb === 'v') this.#pad('<nil>');
      else this.badVerb(verb, arg);
      return;
    }
    if (verb === 'T') {
      this.#pad(this.#truncate(typeName(arg)));
      return;
    }
    if (verb === 'p') {
      this.badVerb(verb, arg);
      return;
    }
    this.printValue(arg, verb, 0);
  }

  printValue(v: unknown, verb: string, depth: number): void {
    if (v === null || v === undefined) {
      this.buf += '<nil>';
      return;
    }
    if (typeof v === 'boolean') {
      if (verb === 't' || verb === 'v') this.#pad(v ? 'true' : 'false');
      else this.badVerb(verb, v);
    } else if (isInt(v) || typeof v === 'bigint') {
      this.#fmtInteger(BigInt(v), verb, v);
    } else if (isFloat(v)) {
      this.#fmtFloat(floatOf(v), verb, v);
    } else if (typeof v === 'string') {
      this.#fmtString(v, verb);
    } else if (Array.isArray(v)) {
      this.buf += '[';
      v.forEach((e, i) => {
        if (i > 0) this.buf += ' ';
        this.printValue(e, verb, depth + 1);
      });
      this.buf += ']';
    } else if (typeof v === 'function') {
      // Go prints a func as its address; there is none to show here.
      if (verb === 'v' || verb === 'p') this.#pad('0x0');
      else this.buf += `%!${verb}(${typeName(v)}=0x0)`;
    } else {
      this.buf += 'map[';
      const m = v as Record<string, unknown>;
      sortedKeys(m).forEach((k, i) => {
        if (i > 0) this.buf += ' ';
        this.printValue(k, verb, depth + 1);
        this.buf += ':';
        this.printValue(m[k], verb, depth + 1);
      });
      this.buf += ']';
    }
  }

  #fmtInteger(n: bigint, verb: string, orig: unknown): void {
    switch (verb) {
      case 'v': case 'd': return this.#fmtInt(n, 10, verb, false);
      case 'b': return this.#fmtInt(n, 2, verb, false);
      case 'o': case 'O': return this.#fmtInt(n, 8, verb, false);
      case 'x': return this.#fmtInt(n, 16, verb, false);
      case 'X': return this.#fmtInt(n, 16, verb, true);
      case 'c': {
        const r = n >= 0n && n <= 0x10ffffn && !(n >= 0xd800n && n <= 0xdfffn) ? Number(n) : 0xfffd;
        return this.#pad(String.fromCodePoint(r));
      }
      case 'q': {
        const r = n >= 0n && n <= 0x10ffffn ? Number(n) : 0xfffd;
        return this.#pad(this.f.sharp && isPrint(r) ? `'${String.fromCodePoint(r)}'` : goQuoteRune(r));
      }
      case 'U': {
        let s = 'U+' + n.toString(16).toUpperCase().padStart(Math.max(4, this.f.precPresent ? this.f.prec : 0), '0');
        if (this.f.sharp && n >= 0n && n <= 0x10ffffn && isPrint(Number(n))) s += ` '${String.fromCodePoint(Number(n))}'`;
        return this.#padNoZero(s);
      }
    }
    this.badVerb(verb, orig);
  }

  #fmtInt(n: bigint, base: number, verb: string, upper: boolean): void {
    const f = this.f;
    const negative = n < 0n;
    const u = negative ? -n : n;
    let prec = 0;
    if (f.precPresent) {
      prec = f.prec;
      if (prec === 0 && u === 0n) {
        const z = f.zero;
        f.zero = false;
        this.#writePadding(f.wid);
        f.zero = z;
        return;
      }
    } else if (f.zero && !f.minus && f.widPresent) {
      prec = f.wid;
      if (negative || f.plus || f.space) prec--;
    }
    let s = u.toString(base);
    if (upper) s = s.toUpperCase();
    s = s.padStart(prec, '0');
    if (f.sharp) {
      if (base === 2) s = '0b' + s;
      else if (base === 8 && s[0] !== '0') s = '0' + s;
      else if (base === 16) s = (upper ? '0X' : '0x') + s;
    }
    if (verb === 'O') s = '0o' + s;
    if (negative) s = '-' + s;
    else if (f.plus) s = '+' + s;
    else if (f.space) s = ' ' + s;
    this.#padNoZero(s);
  }

  #fmtFloat(v: number, verb: string, orig: unknown): void {
    let fmt: string;
    let prec: number;
    switch (verb) {
      case 'v': [fmt, prec] = ['g', -1]; break;
      case 'g': case 'G': [fmt, prec] = [verb, -1]; break;
      case 'e': case 'E': case 'f': [fmt, prec] = [verb, 6]; break;
      case 'F': [fmt, prec] = ['f', 6]; break;
      case 'x': case 'X': [fmt, prec] = [verb, -1]; break;
      default: return this.badVerb(verb, orig);
    }
    const f = this.f;
    if (f.precPresent) prec = f.prec;
    let num = formatFloat(v, fmt, prec);
    if (num[0] !== '-' && num[0] !== '+') num = '+' + num;
    if (f.space && num[0] === '+' && !f.plus) num = ' ' + num.slice(1);
    if (num[1] === 'I' || num[1] === 'N') {
      if (num[1] === 'N' && !f.space && !f.plus) num = num.slice(1);
      return this.#padNoZero(num);
    }
    if (f.plus || num[0] !== '+') {
      if (f.zero && !f.minus && f.widPresent && f.wid > num.length) {
        this.buf += num[0];
        this.#writePadding(f.wid - num.length);
        this.buf += num.slice(1);
        return;
      }
      return this.#pad(num);
    }
    this.#pad(num.slice(1));
  }

  #fmtString(s: string, verb: string): void {
    switch (verb) {
      case 'v':
        if (this.f.sharpV) return this.#fmtQ(s);
        return this.#pad(this.#truncate(s));
      case 's': return this.#pad(this.#truncate(s));
      case 'x': case 'X': return this.#fmtSx(s, verb === 'X');
      case 'q': return this.#fmtQ(s);
    }
    this.badVerb(verb, s);
  }

  #fmtSx(s: string, upper: boolean): void {
    let bytes = [...utf8(s)];
    if (this.f.precPresent && this.f.prec < bytes.length) bytes = bytes.slice(0, this.f.prec);
    const x = upper ? '0X' : '0x';
    const h = (b: number): string => (upper ? hex(b, 2).toUpperCase() : hex(b, 2));
    let out: string;
    if (this.f.space) out = bytes.map((b) => (this.f.sharp ? x : '') + h(b)).join(' ');
    else out = (this.f.sharp && bytes.length > 0 ? x : '') + bytes.map(h).join('');
    this.#pad(out);
  }

  #fmtQ(s: string): void {
    s = this.#truncate(s);
    if (this.f.sharp && !/[`\x00-\x08\x0a-\x1f\x7f\uFEFF]/.test(s)) return this.#pad('`' + s + '`');
    if (this.f.plus) {
      let out = '"';
      for (const ch of s) {
        const r = ch.codePointAt(0)!;
        if (r < 0x80) out += escapeRune(r, 0x22);
        else if (r < 0x10000) out += '\\u' + hex(r, 4);
        else out += '\\U' + hex(r, 8);
      }
      return this.#pad(out + '"');
    }
    this.#pad(goQuote(s));
  }
}

function sprintVerb(v: unknown, verb: string): string {
  const p = new Printer();
  p.printArg(v, verb);
  return p.buf;
}
const sprintV = (v: unknown): string => sprintVerb(v, 'v');

function sprint(args: unknown[]): string {
  const p = new Printer();
  let prevString = false;
  args.forEach((a, i) => {
    const isString = typeof a === 'string';
    if (i > 0 && !isString && !prevString) p.buf += ' ';
    p.printArg(a, 'v');
    prevString = isString;
  });
  return p.buf;
}

function sprintln(args: unknown[]): string {
  const p = new Printer();
  args.forEach((a, i) => {
    if (i > 0) p.buf += ' ';
    p.printArg(a, 'v');
  });
  return p.buf + '\n';
}

/** fmt.Sprintf */
function sprintf(format: string, a: unknown[]): string {
  const p = new Printer();
  const end = format.length;
  let argNum = 0;
  let afterIndex = false;
  let reordered = false;
  let goodArgNum = true;

  const parsenum = (i: number): [number, boolean, number] => {
    let num = 0;
    let isnum = false;
    let j = i;
    while (j < end && format[j] >= '0' && format[j] <= '9') {
      if (num > 1e6) return [0, false, end];
      num = num * 10 + Number(format[j]);
      isnum = true;
      j++;
    }
    return [num, isnum, j];
  };
  const argNumber = (i: number): [number, number, boolean] => {
    if (i >= end || format[i] !== '[') return [argNum, i, false];
    reordered = true;
    for (let j = i + 1; j < end; j++) {
      if (format[j] === ']') {
        const [w, ok, newi] = parsenum(i + 1);
        if (!ok || newi !== j) {
          goodArgNum = false;
          return [argNum, j + 1, true];
        }
        const idx = w - 1;
        if (idx >= 0 && idx < a.length) return [idx, j + 1, true];
        goodArgNum = false;
        return [argNum, j + 1, true];
      }
    }
    goodArgNum = false;
    return [argNum, i + 1, false];
  };
  const intFromArg = (): [number, boolean] => {
    let num = 0;
    let ok = false;
    if (argNum < a.length) {
      const v = a[argNum];
      if (isInt(v)) {
        num = v;
        ok = Math.abs(v) <= 1e6;
        if (!ok) num = 0;
      }
      argNum++;
    }
    return [num, ok];
  };

  let i = 0;
  formatLoop: while (i < end) {
    goodArgNum = true;
    const lasti = i;
    while (i < end && format[i] !== '%') i++;
    if (i > lasti) p.buf += format.slice(lasti, i);
    if (i >= end) break;
    i++;
    p.f = clearFlags();
    const f = p.f;
    simple: for (; i < end; i++) {
      const c = format[i];
      switch (c) {
        case '#': f.sharp = true; break;
        case '0': f.zero = !f.minus; break;
        case '+': f.plus = true; break;
        case '-': f.minus = true; f.zero = false; break;
        case ' ': f.space = true; break;
        default:
          if (c >= 'a' && c <= 'z' && argNum < a.length) {
            if (c === 'v') {
              f.sharpV = f.sharp;
              f.sharp = false;
              f.plusV = f.plus;
              f.plus = false;
            }
            p.printArg(a[argNum], c);
            argNum++;
            i++;
            continue formatLoop;
          }
          break simple;
      }
    }
    [argNum, i, afterIndex] = argNumber(i);
    if (i < end && format[i] === '*') {
      i++;
      [f.wid, f.widPresent] = intFromArg();
      if (!f.widPresent) p.buf += '%!(BADWIDTH)';
      if (f.wid < 0) {
        f.wid = -f.wid;
        f.minus = true;
        f.zero = false;
      }
      afterIndex = false;
    } else {
      [f.wid, f.widPresent, i] = parsenum(i);
      if (afterIndex && f.widPresent) goodArgNum = false;
    }
    if (i + 1 < end && format[i] === '.') {
      i++;
      if (afterIndex) goodArgNum = false;
      [argNum, i, afterIndex] = argNumber(i);
      if (i < end && format[i] === '*') {
        i++;
        [f.prec, f.precPresent] = intFromArg();
        if (f.prec < 0) {
          f.prec = 0;
          f.precPresent = false;
        }
        if (!f.precPresent) p.buf += '%!(BADPREC)';
        afterIndex = false;
      } else {
        [f.prec, f.precPresent, i] = parsenum(i);
        if (!f.precPresent) {
          f.prec = 0;
          f.precPresent = true;
        }
      }
    }
    if (!afterIndex) [argNum, i, afterIndex] = argNumber(i);
    if (i >= end) {
      p.buf += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i)!);
    i += verb.length;
    if (verb === '%') p.buf += '%';
    else if (!goodArgNum) p.buf += `%!${verb}(BADINDEX)`;
    else if (argNum >= a.length) p.buf += `%!${verb}(MISSING)`;
    else {
      if (verb === 'v') {
        f.sharpV = f.sharp;
        f.sharp = false;
        f.plusV = f.plus;
        f.plus = false;
      }
      p.printArg(a[argNum], verb);
      argNum++;
    }
  }
  if (!reordered && argNum < a.length) {
    p.f = clearFlags();
    p.buf += '%!(EXTRA ';
    a.slice(argNum).forEach((arg, k) => {
      if (k > 0) p.buf += ', ';
      if (arg === null || arg === undefined) p.buf += '<nil>';
      else {
        p.buf += typeName(arg) + '=';
        p.printArg(arg, 'v');
      }
    });
    p.buf += ')';
  }
  return p.buf;
}

// ---------------------------------------------------------------------------
// Execution

const MAX_EXEC_DEPTH = 1000;

interface Variable {
  name: string;
  value: unknown;
}

class GoTemplate implements Template {
  readonly source: string;
  readonly trees = new Map<string, ListNode>();

  constructor(source: string) {
    this.source = source;
    new Parser(new TokenStream(lex(source)), this.trees, FUNCS).parse();
  }

  execute(data: unknown): string {
    return this.run(data, FUNCS, false);
  }

  /** Runs the main template; with `partial`, an execution error just ends the output. */
  run(data: unknown, funcs: ReadonlyMap<string, FuncDef>, partial: boolean): string {
    const out: string[] = [];
    const dot = data === null ? undefined : data;
    const st = new Exec(this, '', out, [{ name: '$', value: dot }], 0, funcs);
    try {
      st.walk(dot, this.trees.get('')!);
    } catch (e) {
      if (!(e instanceof ExecError)) throw e;
      if (!partial) throw invalidArgument(e.message, e);
    }
    return out.join('');
  }
}

function errorContext(source: string, n: AnyNode): [string, string] {
  const text = source.slice(0, n.pos);
  const nl = text.lastIndexOf('\n');
  const col = nl === -1 ? byteLength(text) : byteLength(text.slice(nl + 1));
  const line = 1 + countNewlines(text);
  return [`:${line}:${col}`, nodeString(n)];
}

class Exec {
  readonly #tmpl: GoTemplate;
  readonly #name: string;
  readonly #out: string[];
  readonly #vars: Variable[];
  readonly #depth: number;
  readonly #funcs: ReadonlyMap<string, FuncDef>;
  #node: AnyNode | null = null;

  constructor(tmpl: GoTemplate, name: string, out: string[], vars: Variable[], depth: number, funcs: ReadonlyMap<string, FuncDef>) {
    this.#tmpl = tmpl;
    this.#name = name;
    this.#out = out;
    this.#vars = vars;
    this.#depth = depth;
    this.#funcs = funcs;
  }

  #at(n: AnyNode): void {
    this.#node = n;
  }

  #errorf(msg: string): never {
    if (this.#node === null) throw new ExecError(`template: ${this.#name}: ${msg}`);
    const [loc, ctx] = errorContext(this.#tmpl.source, this.#node);
    throw new ExecError(`template: ${loc}: executing ${goQuote(this.#name)} at <${ctx}>: ${msg}`);
  }

  #setVar(name: string, value: unknown): void {
    for (let i = this.#vars.length - 1; i >= 0; i--) {
      if (this.#vars[i].name === name) {
        this.#vars[i].value = value;
        return;
      }
    }
    this.#errorf(`undefined variable: ${name}`);
  }

  #varValue(name: string): unknown {
    for (let i = this.#vars.length - 1; i >= 0; i--) {
      if (this.#vars[i].name === name) return this.#vars[i].value;
    }
    this.#errorf(`undefined variable: ${name}`);
  }

  walk(dot: unknown, node: Node): void {
    this.#at(node);
    switch (node.kind) {
      case 'action': {
        const val = this.#evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.#printValue(node, val);
        return;
      }
      case 'break': throw BREAK;
      case 'continue': throw CONTINUE;
      case 'if': case 'with': return this.#walkIfOrWith(dot, node);
      case 'list':
        for (const n of node.nodes) this.walk(dot, n);
        return;
      case 'range': return this.#walkRange(dot, node);
      case 'template': return this.#walkTemplate(dot, node);
      case 'text':
        this.#out.push(node.text);
        return;
    }
    this.#errorf(`unknown node: ${nodeString(node)}`);
  }

  #walkIfOrWith(dot: unknown, node: BranchNode): void {
    const mark = this.#vars.length;
    try {
      const val = this.#evalPipeline(dot, node.pipe);
      if (isTrue(deref(val))) this.walk(node.kind === 'with' ? val : dot, node.list);
      else if (node.elseList) this.walk(dot, node.elseList);
    } finally {
      this.#vars.length = mark;
    }
  }

  #walkRange(dot: unknown, r: BranchNode): void {
    this.#at(r);
    const mark0 = this.#vars.length;
    try {
      const val = this.#evalPipeline(dot, r.pipe);
      const mark = this.#vars.length;
      const decl = r.pipe.decl;
      const oneIteration = (ix: unknown, elem: unknown): void => {
        if (decl.length > 0) {
          if (r.pipe.isAssign) this.#setVar(decl[0].ident[0], decl.length > 1 ? ix : elem);
          else this.#vars[this.#vars.length - 1].value = elem;
        }
        if (decl.length > 1) {
          if (r.pipe.isAssign) this.#setVar(decl[1].ident[0], elem);
          else this.#vars[this.#vars.length - 2].value = ix;
        }
        try {
          this.walk(elem, r.list);
        } catch (e) {
          if (e !== CONTINUE) throw e;
        } finally {
          this.#vars.length = mark;
        }
      };
      try {
        if (Array.isArray(val)) {
          if (val.length > 0) {
            for (let i = 0; i < val.length; i++) oneIteration(i, val[i]);
            return;
          }
        } else if (isInt(val)) {
          if (decl.length > 1) this.#errorf(`can't use ${sprintV(val)} to iterate over more than one variable`);
          if (val > 0) {
            for (let i = 0; i < val; i++) oneIteration(i, i);
            return;
          }
        } else if (isMap(val)) {
          const keys = sortedKeys(val);
          if (keys.length > 0) {
            for (const k of keys) oneIteration(k, val[k]);
            return;
          }
        } else if (val !== undefined) {
          this.#errorf(`range can't iterate over ${sprintV(val)}`);
        }
        if (r.elseList) this.walk(dot, r.elseList);
      } catch (e) {
        if (e !== BREAK) throw e;
      }
    } finally {
      this.#vars.length = mark0;
    }
  }

  #walkTemplate(dot: unknown, t: TemplateNode): void {
    this.#at(t);
    const tree = this.#tmpl.trees.get(t.name);
    if (!tree) this.#errorf(`template ${goQuote(t.name)} not defined`);
    if (this.#depth >= MAX_EXEC_DEPTH) this.#errorf(`exceeded maximum template depth (${MAX_EXEC_DEPTH})`);
    const newDot = this.#evalPipeline(dot, t.pipe);
    const st = new Exec(this.#tmpl, t.name, this.#out, [{ name: '$', value: newDot }], this.#depth + 1, this.#funcs);
    st.walk(newDot, tree);
  }

  #evalPipeline(dot: unknown, pipe: PipeNode | null): unknown {
    if (!pipe) return undefined;
    this.#at(pipe);
    let value: unknown = MISSING;
    for (const cmd of pipe.cmds) {
      value = this.#evalCommand(dot, cmd, value);
      if (value === null) value = undefined; // a nil interface{} unwraps to the invalid value
    }
    for (const v of pipe.decl) {
      if (pipe.isAssign) this.#setVar(v.ident[0], value);
      else this.#vars.push({ name: v.ident[0], value });
    }
    return value;
  }

  #notAFunction(args: ArgNode[] | null, final: unknown): void {
    if ((args !== null && args.length > 1) || final !== MISSING) {
      this.#errorf(`can't give argument to non-function ${nodeString(args![0])}`);
    }
  }

  #evalCommand(dot: unknown, cmd: CommandNode, final: unknown): unknown {
    const first = cmd.args[0];
    switch (first.kind) {
      case 'field': return this.#evalFieldNode(dot, first, cmd.args, final);
      case 'chain': return this.#evalChainNode(dot, first, cmd.args, final);
      case 'identifier': return this.#evalFunction(dot, first, cmd, cmd.args, final);
      case 'pipe':
        this.#notAFunction(cmd.args, final);
        return this.#evalPipeline(dot, first);
      case 'variable': return this.#evalVariableNode(dot, first, cmd.args, final);
    }
    this.#at(first);
    this.#notAFunction(cmd.args, final);
    switch (first.kind) {
      case 'bool': return first.value;
      case 'dot': return dot;
      case 'nil': this.#errorf('nil is not a command');
      case 'number': return this.#idealConstant(first);
      case 'string': return first.text;
    }
  }

  #idealConstant(c: NumberNode): unknown {
    this.#at(c);
    const isHexInt = c.text.length > 2 && c.text[0] === '0' && 'xX'.includes(c.text[1]) && !/[pP]/.test(c.text);
    if (c.isFloat && !isHexInt && c.text[0] !== "'" && /[.eEpP]/.test(c.text)) return new GoFloat(c.float);
    if (c.isInt) return c.int;
    if (c.isUint) this.#errorf(`${c.text} overflows int`);
    return undefined;
  }

  #evalFieldNode(dot: unknown, field: FieldNode, args: ArgNode[] | null, final: unknown): unknown {
    this.#at(field);
    return this.#evalFieldChain(dot, dot, field, field.ident, args, final);
  }

  #evalChainNode(dot: unknown, chain: ChainNode, args: ArgNode[] | null, final: unknown): unknown {
    this.#at(chain);
    if (chain.node.kind === 'nil') this.#errorf(`indirection through explicit nil in ${nodeString(chain)}`);
    const pipe = this.#evalArg(dot, null, chain.node);
    return this.#evalFieldChain(dot, pipe, chain, chain.field, args, final);
  }

  #evalVariableNode(dot: unknown, v: VariableNode, args: ArgNode[] | null, final: unknown): unknown {
    this.#at(v);
    const value = this.#varValue(v.ident[0]);
    if (v.ident.length === 1) {
      this.#notAFunction(args, final);
      return value;
    }
    return this.#evalFieldChain(dot, value, v, v.ident.slice(1), args, final);
  }

  #evalFieldChain(dot: unknown, receiver: unknown, node: AnyNode, ident: string[], args: ArgNode[] | null, final: unknown): unknown {
    const n = ident.length;
    for (let i = 0; i < n - 1; i++) receiver = this.#evalField(dot, ident[i], node, null, MISSING, receiver);
    return this.#evalField(dot, ident[n - 1], node, args, final, receiver);
  }

  #evalField(dot: unknown, fieldName: string, node: AnyNode, args: ArgNode[] | null, final: unknown, receiver: unknown): unknown {
    if (receiver === undefined) return undefined;
    if (receiver === null) this.#errorf(`nil pointer evaluating interface {}.${fieldName}`);
    if (typeof receiver === 'object' && !Array.isArray(receiver)) {
      const method = lookupMethod(receiver, fieldName);
      if (method) {
        const def: FuncDef = { params: [], variadic: 'any', fn: (argv) => method.apply(receiver, argv) };
        return this.#evalCall(dot, def, node, fieldName, args, final);
      }
    }
    const hasArgs = (args !== null && args.length > 1) || final !== MISSING;
    if (isMap(receiver)) {
      if (hasArgs) this.#errorf(`${fieldName} is not a method but has arguments`);
      return fieldOf(receiver, fieldName);
    }
    this.#errorf(`can't evaluate field ${fieldName} in type ${typeName(receiver)}`);
  }

  #evalFunction(dot: unknown, node: IdentifierNode, cmd: AnyNode, args: ArgNode[] | null, final: unknown): unknown {
    this.#at(node);
    const fn = this.#funcs.get(node.ident);
    if (!fn) this.#errorf(`${goQuote(node.ident)} is not a defined function`);
    return this.#evalCall(dot, fn, cmd, node.ident, args, final);
  }

  #evalCall(dot: unknown, fn: FuncDef, node: AnyNode, name: string, argNodes: ArgNode[] | null, final: unknown): unknown {
    const args = argNodes ? argNodes.slice(1) : [];
    const numIn = args.length + (final !== MISSING ? 1 : 0);
    const nParams = fn.params.length;
    let numFixed = args.length;
    if (fn.variadic) {
      numFixed = nParams;
      if (numIn < numFixed) this.#errorf(`wrong number of args for ${name}: want at least ${nParams} got ${args.length}`);
    } else if (numIn !== nParams) {
      this.#errorf(`wrong number of args for ${name}: want ${nParams} got ${numIn}`);
    }
    if (fn.special === 'and' || fn.special === 'or') {
      let v: unknown = undefined;
      for (const a of args) {
        v = this.#evalArg(dot, 'value', a);
        if (isTrue(deref(v)) === (fn.special === 'or')) return v;
      }
      if (final !== MISSING) v = this.#validateType(final, 'value');
      return v;
    }
    const argv: unknown[] = [];
    let i = 0;
    for (; i < numFixed && i < args.length; i++) argv.push(this.#evalArg(dot, fn.params[i], args[i]));
    if (fn.variadic) for (; i < args.length; i++) argv.push(this.#evalArg(dot, fn.variadic, args[i]));
    if (final !== MISSING) {
      let t: PType;
      if (fn.variadic) t = numIn - 1 < numFixed ? fn.params[numIn - 1] : fn.variadic;
      else t = fn.params[nParams - 1];
      argv.push(this.#validateType(final, t));
    }
    try {
      return fn.fn(argv, fn.special === 'call' && args.length > 0 ? nodeString(args[0]) : '');
    } catch (e) {
      if (e === BREAK || e === CONTINUE || e instanceof ExecError) throw e;
      this.#at(node);
      this.#errorf(`error calling ${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  #validateType(value: unknown, typ: PType | null): unknown {
    if (value === undefined) {
      if (typ === null || typ === 'value') return undefined;
      if (typ === 'any') return null;
      if (typ === 'strings') return [];
      this.#errorf(`invalid value; expected ${PTYPE_NAMES[typ]}`);
    }
    switch (typ) {
      case null: case 'value': case 'any': return value;
      case 'string': if (typeof value === 'string') return value; break;
      case 'int': if (isInt(value)) return value; break;
      case 'bool': if (typeof value === 'boolean') return value; break;
      case 'strings': if (Array.isArray(value) && value.every((s) => typeof s === 'string')) return value; break;
    }
    this.#errorf(`wrong type for value; expected ${PTYPE_NAMES[typ]}; got ${typeName(value)}`);
  }

  #evalArg(dot: unknown, typ: PType | null, n: ArgNode): unknown {
    this.#at(n);
    switch (n.kind) {
      case 'dot': return this.#validateType(dot, typ);
      case 'nil':
        if (typ === null || typ === 'value') return undefined;
        if (typ === 'any') return null;
        if (typ === 'strings') return [];
        this.#errorf(`cannot assign nil to ${PTYPE_NAMES[typ]}`);
      case 'field': return this.#validateType(this.#evalFieldNode(dot, n, [n], MISSING), typ);
      case 'variable': return this.#validateType(this.#evalVariableNode(dot, n, null, MISSING), typ);
      case 'pipe': return this.#validateType(this.#evalPipeline(dot, n), typ);
      case 'identifier': return this.#validateType(this.#evalFunction(dot, n, n, null, MISSING), typ);
      case 'chain': return this.#validateType(this.#evalChainNode(dot, n, null, MISSING), typ);
    }
    switch (typ) {
      case 'bool':
        if (n.kind === 'bool') return n.value;
        this.#errorf(`expected bool; found ${nodeString(n)}`);
      case 'int':
        if (n.kind === 'number' && n.isInt) return n.int;
        this.#errorf(`expected integer; found ${nodeString(n)}`);
      case 'string':
        if (n.kind === 'string') return n.text;
        this.#errorf(`expected string; found ${nodeString(n)}`);
      case 'any': case 'value': case null:
        this.#at(n);
        if (n.kind === 'bool') return n.value;
        if (n.kind === 'number') return this.#idealConstant(n);
        return n.text;
    }
    this.#errorf(`can't handle ${nodeString(n)} for arg of type ${PTYPE_NAMES[typ]}`);
  }

  #printValue(node: ActionNode, v: unknown): void {
    this.#at(node);
    if (v === undefined || v === null) {
      this.#out.push('<no value>');
      return;
    }
    if (typeof v === 'function') this.#errorf(`can't print ${nodeString(node)} of type ${typeName(v)}`);
    this.#out.push(sprintV(v));
  }
}
