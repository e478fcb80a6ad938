// Docker's shell-word processing: the small shell lexer that BuildKit (and the legacy builder
// before it) runs over the arguments of some instructions. It does three things at once:
//   - variable substitution: $VAR, ${VAR}, ${VAR:-w}, ${VAR-w}, ${VAR:+w}, ${VAR+w}, ${VAR:?w},
//     ${VAR?w}, and the pattern forms ${VAR#p} ${VAR##p} ${VAR%p} ${VAR%%p} ${VAR/p/r} ${VAR//p/r};
//   - quote removal: '…' is literal (no escapes, no expansion), "…" expands $ and lets the escape
//     character escape only `"`, `$` and itself;
//   - escape handling with the Dockerfile's escape character (`\` or a backtick).
// `expandWord` returns the processed text as one string (spaces kept); `expandWords` also splits
// it into words, where unquoted whitespace — including whitespace that came out of an unquoted
// variable — separates words, as BuildKit's `ProcessWords` does.
//
// Which instructions Docker expands is `EXPANDED_INSTRUCTIONS` below. RUN, CMD, ENTRYPOINT, SHELL
// and HEALTHCHECK are not expanded: their text goes to the shell in the container unchanged.

/**
 * Instructions whose words Docker runs through variable substitution (the Dockerfile reference's
 * "Environment replacement" list, plus ARG default values, which BuildKit also expands).
 * ONBUILD is not here: its trigger is expanded when it runs, as the instruction it names.
 * The flags of COPY/ADD (`--from`, `--chown`, `--chmod`) and RUN's `--mount` are expanded as well.
 * Expand every word of these even when it holds no `$`: expansion is also what removes quotes
 * and escapes (`ENV a="x y"` sets `x y`).
 */
export const EXPANDED_INSTRUCTIONS: ReadonlySet<string> = new Set([
  'ADD', 'COPY', 'ENV', 'EXPOSE', 'FROM', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR', 'ARG',
]);

/** Looks a variable up; undefined means unset (which differs from empty for `-`, `+` and `?`). */
export type VariableLookup = (name: string) => string | undefined;

/** A substitution the word asked to fail (`${VAR:?message}`) or a malformed word. */
export class ExpansionError extends Error {
  /** The message without the word it came from (`x: is not allowed to be unset`). */
  readonly reason: string;
  constructor(message: string, reason: string = message) {
    super(message);
    this.name = 'ExpansionError';
    this.reason = reason;
  }
}

export interface LexOptions {
  /** The escape character, `\` by default. */
  escape?: string;
  /** Keep quote characters in the output (used to find heredoc words). */
  rawQuotes?: boolean;
  /** Keep escape characters in the output (used to find heredoc words). */
  rawEscapes?: boolean;
  /** Leave `$VAR` as written when VAR is unset instead of substituting the empty string. */
  skipUnset?: boolean;
}

/** Expands one word to a single string: quotes removed, variables substituted, spaces kept. */
export function expandWord(word: string, lookup: VariableLookup, escape: string = '\\', options: LexOptions = {}): string {
  return lex(word, lookup, { ...options, escape }).text;
}

/** Expands a string and splits the result into words, as for EXPOSE `$PORTS` or heredoc detection. */
export function expandWords(text: string, lookup: VariableLookup, escape: string = '\\', options: LexOptions = {}): string[] {
  return lex(text, lookup, { ...options, escape }).words;
}

/** Runs the lexer; errors name the word as Docker does (`failed to process "${x:?}": x: …`). */
function lex(source: string, lookup: VariableLookup, options: LexOptions): { text: string; words: string[] } {
  try {
    return new Lexer(source, lookup, options).run();
  } catch (err) {
    if (err instanceof ExpansionError) throw new ExpansionError(`failed to process "${source}": ${err.message}`, err.reason);
    throw err;
  }
}

const EOF = '';
const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);
const isSpace = (ch: string) => /^\s$/u.test(ch);
const isNameChar = (ch: string) => /^[\p{L}\p{N}_]$/u.test(ch);
const isDigit = (ch: string) => /^\p{Nd}$/u.test(ch);

/** Accumulates words: raw text always joins the current word, unquoted spaces end it. */
class WordBuilder {
  list: string[] = [];
  #word = '';
  #inWord = false;

  addChar(ch: string): void {
    if (isSpace(ch)) {
      if (this.#inWord && this.#word.length) {
        this.list.push(this.#word);
        this.#word = '';
        this.#inWord = false;
      }
    } else {
      this.addRaw(ch);
    }
  }

  addString(s: string): void {
    for (const ch of s) this.addChar(ch);
  }

  addRaw(s: string): void {
    this.#word += s;
    this.#inWord = true;
  }

  finish(): string[] {
    // An empty quoted word ("") alone does not make a word, as in BuildKit.
    if (this.#word.length) this.list.push(this.#word);
    this.#word = '';
    this.#inWord = false;
    return this.list;
  }
}

class Lexer {
  #chars: string[];
  #pos = 0;
  #lookup: VariableLookup;
  #escape: string;
  #rawQuotes: boolean;
  #rawEscapes: boolean;
  #skipUnset: boolean;

  constructor(source: string, lookup: VariableLookup, options: LexOptions) {
    this.#chars = Array.from(source);
    this.#lookup = lookup;
    this.#escape = options.escape ?? '\\';
    this.#rawQuotes = options.rawQuotes ?? false;
    this.#rawEscapes = options.rawEscapes ?? false;
    this.#skipUnset = options.skipUnset ?? false;
  }

  run(): { text: string; words: string[] } {
    return this.#until(EOF);
  }

  #peek(): string {
    return this.#chars[this.#pos] ?? EOF;
  }

  #next(): string {
    return this.#chars[this.#pos++] ?? EOF;
  }

  /** Processes up to `stop` (consumed) or the end of input when stop is EOF. */
  #until(stop: string): { text: string; words: string[] } {
    let text = '';
    const words = new WordBuilder();
    while (this.#peek() !== EOF) {
      const ch = this.#peek();
      if (stop !== EOF && ch === stop) {
        this.#next();
        return { text, words: words.finish() };
      }
      if (ch === "'" || ch === '"') {
        const quoted = ch === "'" ? this.#singleQuoted() : this.#doubleQuoted();
        text += quoted;
        words.addRaw(quoted);
        continue;
      }
      if (ch === '$') {
        const value = this.#dollar();
        text += value;
        // An unquoted expansion is split on whitespace.
        words.addString(value);
        continue;
      }
      let c = this.#next();
      if (c === this.#escape) {
        if (this.#rawEscapes) {
          words.addRaw(c);
          text += c;
        }
        c = this.#next();
        if (c === EOF) break; // an escape at the very end is dropped
        words.addRaw(c);
      } else {
        words.addChar(c);
      }
      text += c;
    }
    if (stop !== EOF) throw new ExpansionError(`unexpected end of statement while looking for matching ${stop}`);
    return { text, words: words.finish() };
  }

  /** '…': everything literal up to the next single quote; nothing can be escaped. */
  #singleQuoted(): string {
    let out = '';
    const open = this.#next();
    if (this.#rawQuotes) out += open;
    for (;;) {
      const ch = this.#next();
      if (ch === EOF) throw new ExpansionError('unexpected end of statement while looking for matching single-quote');
      if (ch === "'") {
        if (this.#rawQuotes) out += ch;
        return out;
      }
      out += ch;
    }
  }

  /** "…": literal except `$`; the escape character escapes only `"`, `$` and itself. */
  #doubleQuoted(): string {
    let out = '';
    const open = this.#next();
    if (this.#rawQuotes) out += open;
    for (;;) {
      const ch = this.#peek();
      if (ch === EOF) throw new ExpansionError('unexpected end of statement while looking for matching double-quote');
      if (ch === '"') {
        this.#next();
        if (this.#rawQuotes) out += ch;
        return out;
      }
      if (ch === '$') {
        out += this.#dollar();
        continue;
      }
      let c = this.#next();
      if (c === this.#escape) {
        const after = this.#peek();
        if (after === EOF) continue; // an escape at the end of the word is ignored
        if (after === '"' || after === '$' || after === this.#escape) {
          if (this.#rawEscapes) out += c;
          c = this.#next();
        }
        // Any other escape is kept as written: "a\b" stays a\b.
      }
      out += c;
    }
  }

  /** `$name`, `${name}` or `${name<modifier>word}`, with `$` under the cursor. */
  #dollar(): string {
    this.#next();
    if (this.#peek() !== '{') {
      const name = this.#name();
      if (name === '') return '$';
      const value = this.#lookup(name);
      if (value === undefined && this.#skipUnset) return '$' + name;
      return value ?? '';
    }
    this.#next();
    const first = this.#peek();
    if (first === EOF) throw new ExpansionError("syntax error: missing '}'");
    if (first === '{' || first === '}' || first === ':') throw new ExpansionError('syntax error: bad substitution');
    const name = this.#name();
    const op = this.#next();
    if (op === '}') {
      const value = this.#lookup(name);
      if (value === undefined && this.#skipUnset) return '${' + name + '}';
      return value ?? '';
    }
    if (op === ':') {
      const modifier = this.#next();
      const word = this.#modifierWord();
      const value = this.#lookup(name);
      if (value === undefined && this.#skipUnset) return '${' + name + ':' + modifier + word + '}';
      switch (modifier) {
        case '+':
          return value ? word : (value ?? '');
        case '-':
          return value ? value : word;
        case '?':
          if (value === undefined) throw new ExpansionError(`${name}: ${word || 'is not allowed to be unset'}`);
          if (value === '') throw new ExpansionError(`${name}: ${word || 'is not allowed to be empty'}`);
          return value;
        default:
          throw new ExpansionError(`unsupported modifier (${modifier}) in substitution`);
      }
    }
    if (op === '+' || op === '-' || op === '?') {
      const word = this.#modifierWord();
      const value = this.#lookup(name);
      if (value === undefined && this.#skipUnset) return '${' + name + op + word + '}';
      if (op === '+') return value !== undefined ? word : '';
      if (op === '-') return value !== undefined ? value : word;
      if (value === undefined) throw new ExpansionError(`${name}: ${word || 'is not allowed to be unset'}`);
      return value;
    }
    if (op === '#' || op === '%') {
      const longest = this.#peek() === op;
      if (longest) this.#next();
      const pattern = this.#modifierWord();
      const value = this.#lookup(name);
      if (value === undefined && this.#skipUnset) return '${' + name + op + (longest ? op : '') + pattern + '}';
      return op === '#' ? trimPrefix(value ?? '', pattern, longest) : trimSuffix(value ?? '', pattern, longest);
    }
    if (op === '/') {
      const all = this.#peek() === '/';
      if (all) this.#next();
      const pattern = this.#until('/').text; // throws when there is no second slash
      const replacement = this.#modifierWord();
      const value = this.#lookup(name);
      if (value === undefined && this.#skipUnset) return '${' + name + '/' + (all ? '/' : '') + pattern + '/' + replacement + '}';
      return replacePattern(value ?? '', pattern, replacement, all);
    }
    if (op === EOF) throw new ExpansionError("syntax error: missing '}'");
    throw new ExpansionError(`unsupported modifier (${op}) in substitution`);
  }

  /** The word after a modifier, up to the closing brace (it may hold expansions and quotes). */
  #modifierWord(): string {
    try {
      return this.#until('}').text;
    } catch (err) {
      if (this.#peek() === EOF) throw new ExpansionError("syntax error: missing '}'");
      throw err;
    }
  }

  /** A variable name: letters, digits and `_`; or a run of digits; or one special parameter. */
  #name(): string {
    let name = '';
    for (;;) {
      const ch = this.#peek();
      if (ch === EOF) return name;
      if (name === '' && isDigit(ch)) {
        while (isDigit(this.#peek())) name += this.#next();
        return name;
      }
      if (name === '' && SPECIAL_PARAMS.has(ch)) return this.#next();
      if (!isNameChar(ch)) return name;
      name += this.#next();
    }
  }
}

/** A shell glob (`*`, `?`, `[…]`, `\x`) as a regular expression source, unanchored. */
function globToRegex(pattern: string): string {
  let re = '';
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === '*') re += '[\\s\\S]*';
    else if (ch === '?') re += '[\\s\\S]';
    else if (ch === '\\' && i + 1 < chars.length) re += escapeRegex(chars[++i]);
    else if (ch === '[') {
      const close = chars.indexOf(']', i + 2);
      if (close < 0) {
        re += '\\[';
        continue;
      }
      let body = chars.slice(i + 1, close).join('');
      if (body.startsWith('!')) body = '^' + body.slice(1);
      re += '[' + body.replace(/[\]\\]/g, (c) => '\\' + c).replace(/^\\\^/, '^') + ']';
      i = close;
    } else re += escapeRegex(ch);
  }
  return re;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, (c) => '\\' + c);
}

function trimPrefix(value: string, pattern: string, longest: boolean): string {
  const re = new RegExp('^(?:' + globToRegex(pattern) + ')$', 'u');
  const chars = Array.from(value);
  if (longest) {
    for (let n = chars.length; n >= 0; n--) if (re.test(chars.slice(0, n).join(''))) return chars.slice(n).join('');
  } else {
    for (let n = 0; n <= chars.length; n++) if (re.test(chars.slice(0, n).join(''))) return chars.slice(n).join('');
  }
  return value;
}

function trimSuffix(value: string, pattern: string, longest: boolean): string {
  const re = new RegExp('^(?:' + globToRegex(pattern) + ')$', 'u');
  const chars = Array.from(value);
  if (longest) {
    for (let n = 0; n <= chars.length; n++) if (re.test(chars.slice(n).join(''))) return chars.slice(0, n).join('');
  } else {
    for (let n = chars.length; n >= 0; n--) if (re.test(chars.slice(n).join(''))) return chars.slice(0, n).join('');
  }
  return value;
}

/** `${VAR/pattern/replacement}`: the longest match of the glob, first or (`//`) every one. */
function replacePattern(value: string, pattern: string, replacement: string, all: boolean): string {
  if (pattern === '') return value;
  const re = new RegExp(globToRegex(pattern), all ? 'gu' : 'u');
  return value.replace(re, () => replacement);
}
