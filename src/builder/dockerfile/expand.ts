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
// Which instructions Docker expands is `EXPANDED_INSTRUCTIONS` below, and `expandCommand` applies
// the per-instruction rules to a typed command. RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are
// not expanded: their text goes to the shell in the container unchanged.

import type { Command } from './types.ts';

/**
 * Instructions whose words Docker runs through variable substitution (the Dockerfile reference's
 * "Environment replacement" list, plus ARG default values, which BuildKit also expands).
 * ONBUILD is not here: its trigger is expanded when it runs, as the instruction it names.
 * COPY/ADD `--chown`, `--chmod`, ADD `--checksum` and the values of RUN `--mount` are expanded as
 * well; COPY `--from` is refused when it holds a variable, and `--exclude` is used as written.
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
  /** Treat quotes as ordinary characters (heredoc bodies of COPY and ADD). */
  skipQuotes?: boolean;
}

/** Expands one word to a single string: quotes removed, variables substituted, spaces kept. */
export function expandWord(word: string, lookup: VariableLookup, escape: string = '\\', options: LexOptions = {}): string {
  return lex(word, lookup, { ...options, escape }).text;
}

/** Expands a string and splits the result into words, as for EXPOSE `$PORTS` or heredoc detection. */
export function expandWords(text: string, lookup: VariableLookup, escape: string = '\\', options: LexOptions = {}): string[] {
  return lex(text, lookup, { ...options, escape }).words;
}

/**
 * The body of a COPY/ADD heredoc whose delimiter was not quoted (`heredoc.expand`), expanded as
 * BuildKit does: variables are substituted and `\` escapes, but quotes are ordinary characters
 * (a config file's `"…"` stays). The escape character is always `\` here. RUN heredocs are not
 * expanded by the builder: the shell in the container does that.
 */
export function expandHeredoc(content: string, lookup: VariableLookup): string {
  return lex(content, lookup, { escape: '\\', skipQuotes: true }).text;
}

/**
 * A command with its words expanded, as BuildKit expands each instruction before running it:
 * ENV and LABEL keys and values, ARG names and defaults, COPY/ADD sources (not heredoc ones),
 * destination, --chown, --chmod and ADD --checksum, and the bodies of unquoted heredocs
 * (expandHeredoc), WORKDIR, USER, STOPSIGNAL, each VOLUME path, EXPOSE (split into words), and
 * the values of RUN --mount. Everything else is returned unchanged: COPY --from and --exclude are
 * never expanded, and RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK go to the shell as written.
 * `lookup` is the stage's variables at that point (ARGs in scope, then ENV).
 */
export function expandCommand(command: Command, lookup: VariableLookup, escape: string = '\\'): Command {
  const word = (w: string) => expandWord(w, lookup, escape);
  switch (command.kind) {
    case 'ENV':
    case 'LABEL':
      return { ...command, pairs: command.pairs.map(([k, v]): [string, string] => [word(k), word(v)]) };
    case 'ARG':
      return { ...command, args: command.args.map((a) => (a.value === undefined ? { name: word(a.name) } : { name: word(a.name), value: word(a.value) })) };
    case 'COPY':
    case 'ADD': {
      const heredocSources = new Set(command.heredocs.length ? command.sources.filter((s) => /^\d*<<-?\s*[^<]+$/.test(s)) : []);
      const out = {
        ...command,
        sources: command.sources.map((s) => (heredocSources.has(s) ? s : word(s))),
        dest: word(command.dest),
        heredocs: command.heredocs.map((h) => (h.expand ? { ...h, content: expandHeredoc(h.content, lookup) } : h)),
      };
      if (command.chown !== undefined) out.chown = word(command.chown);
      if (command.chmod !== undefined) out.chmod = word(command.chmod);
      if (command.checksum !== undefined) out.checksum = word(command.checksum);
      return out;
    }
    case 'WORKDIR':
    case 'USER':
    case 'STOPSIGNAL':
      return { ...command, value: word(command.value) };
    case 'VOLUME':
      return { ...command, paths: command.paths.map(word) };
    case 'EXPOSE':
      return { ...command, ports: command.ports.flatMap((p) => expandWords(p, lookup, escape)) };
    case 'RUN':
      return {
        ...command,
        mounts: command.mounts.map((m) => ({ ...m, options: Object.fromEntries(Object.entries(m.options).map(([k, v]) => [k, word(v)])) })),
      };
    default:
      return command;
  }
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
  #skipQuotes: boolean;

  constructor(source: string, lookup: VariableLookup, options: LexOptions) {
    this.#chars = Array.from(source);
    this.#lookup = lookup;
    this.#escape = options.escape ?? '\\';
    this.#rawQuotes = options.rawQuotes ?? false;
    this.#rawEscapes = options.rawEscapes ?? false;
    this.#skipUnset = options.skipUnset ?? false;
    this.#skipQuotes = options.skipQuotes ?? false;
  }

  run(): { text: string; words: string[] } {
    return this.#until(EOF, this.#rawEscapes);
  }

  #peek(): string {
    return this.#chars[this.#pos] ?? EOF;
  }

  #next(): string {
    return this.#chars[this.#pos++] ?? EOF;
  }

  /**
   * Processes up to `stop` (consumed) or the end of input when stop is EOF. `rawEscapes` holds
   * for this stretch (pattern words keep their escapes for the pattern matcher).
   */
  #until(stop: string, rawEscapes: boolean): { text: string; words: string[] } {
    const saved = this.#rawEscapes;
    this.#rawEscapes = rawEscapes;
    try {
      return this.#scan(stop);
    } finally {
      this.#rawEscapes = saved;
    }
  }

  #scan(stop: string): { text: string; words: string[] } {
    let text = '';
    const words = new WordBuilder();
    while (this.#peek() !== EOF) {
      const ch = this.#peek();
      if (stop !== EOF && ch === stop) {
        this.#next();
        return { text, words: words.finish() };
      }
      if ((ch === "'" || ch === '"') && !this.#skipQuotes) {
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
      if (ch === '<' && this.#chars[this.#pos + 1] === '<') {
        // `<<` keeps the blanks after it in the same word, so `<< EOF` is one heredoc word.
        let op = this.#next() + this.#next();
        while (this.#peek() === ' ' || this.#peek() === '\t' || this.#peek() === '\r') op += this.#next();
        text += op;
        words.addRaw(op);
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
        if (this.#rawEscapes) out += c;
        const after = this.#peek();
        if (after === EOF) continue; // an escape at the end of the word is ignored
        if (after === '"' || after === '$' || after === this.#escape) c = this.#next();
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
    let op = this.#next();
    let written = op; // the modifier as written, for messages and skipUnset
    if (op === '}') {
      const value = this.#lookup(name);
      if (value === undefined && this.#skipUnset) return '${' + name + '}';
      return value ?? '';
    }
    if (op === '/') return this.#replace(name);
    // With a colon, an empty value counts as unset (`:-`, `:+`, `:?`).
    const emptyIsUnset = op === ':';
    if (emptyIsUnset) {
      op = this.#next();
      written += op;
    }
    const isPattern = op === '#' || op === '%';
    const unsupported = () => new ExpansionError(`unsupported modifier (${written}) in substitution`);
    if (op === EOF && !emptyIsUnset) throw new ExpansionError("syntax error: missing '}'");
    if ((!emptyIsUnset && !['+', '-', '?', '#', '%'].includes(op)) || (emptyIsUnset && isPattern)) throw unsupported();
    let word: string;
    try {
      word = this.#until('}', isPattern).text;
    } catch (err) {
      if (this.#peek() === EOF) throw new ExpansionError("syntax error: missing '}'");
      throw err;
    }
    // After a colon only -, + and ? mean something; BuildKit says so once the word is read.
    if (emptyIsUnset && !['+', '-', '?'].includes(op)) throw unsupported();
    const value = this.#lookup(name);
    if (value === undefined && this.#skipUnset) return '${' + name + written + word + '}';
    const unset = value === undefined || (emptyIsUnset && value === '');
    switch (op) {
      case '-':
        return unset ? word : value!;
      case '+':
        return unset ? '' : word;
      case '?':
        if (value === undefined) throw new ExpansionError(`${name}: ${word || 'is not allowed to be unset'}`);
        if (unset) throw new ExpansionError(`${name}: ${word || 'is not allowed to be empty'}`);
        return value;
      default: {
        // `#`/`%` remove the shortest matching prefix/suffix, `##`/`%%` the longest.
        const greedy = word.startsWith(op);
        const pattern = greedy ? word.slice(1) : word;
        return op === '#' ? trimPrefix(value ?? '', pattern, greedy) : trimSuffix(value ?? '', pattern, greedy);
      }
    }
  }

  /** `${name/pattern/replacement}` (first match) or `${name//pattern/replacement}` (every match). */
  #replace(name: string): string {
    const all = this.#peek() === '/';
    if (all) this.#next();
    let pattern: string;
    try {
      pattern = this.#until('/', true).text;
    } catch (err) {
      if (this.#peek() === EOF) throw new ExpansionError("syntax error: missing '/' in ${}");
      throw err;
    }
    let replacement: string;
    try {
      replacement = this.#until('}', true).text;
    } catch (err) {
      if (this.#peek() === EOF) throw new ExpansionError("syntax error: missing '}'");
      throw err;
    }
    const value = this.#lookup(name);
    if (value === undefined && this.#skipUnset) return '${' + name + '/' + pattern + '/' + replacement + '}';
    const re = shellPatternRegex(pattern, true, false, all);
    const current = value ?? '';
    if (all) return current.replace(re, () => replacement);
    const m = re.exec(current);
    return m ? current.slice(0, m.index) + replacement + current.slice(m.index + m[0].length) : current;
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

/**
 * A substitution pattern (`*` any string, `?` one character, `\` escapes `*`, `?` and `\`; no
 * bracket expressions) as a regular expression. `\}` and `\/` only protect the delimiter.
 */
function shellPatternRegex(pattern: string, greedy: boolean, anchored: boolean, global = false): RegExp {
  let re = anchored ? '^' : '';
  const chars = Array.from(pattern);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === '*') re += greedy ? '.*' : '.*?';
    else if (ch === '?') re += '.';
    else if (ch === '\\') {
      const next = chars[i + 1];
      if (next === '}' || next === '/') continue;
      if (next !== '*' && next !== '?' && next !== '\\') {
        throw new ExpansionError(`invalid pattern (${pattern}) in substitution: invalid escape '\\${next ?? ''}'`);
      }
      re += '\\' + next;
      i++;
    } else if (/[[\]{}.+()|^$/]/.test(ch)) re += '\\' + ch;
    else re += ch;
  }
  return new RegExp(re, global ? 'gu' : 'u');
}

function trimPrefix(value: string, pattern: string, greedy: boolean): string {
  const m = shellPatternRegex(pattern, greedy, true).exec(value);
  return m ? value.slice(m[0].length) : value;
}

/** Reverses a pattern but keeps each escape before the character it escapes (`a\*c` → `c\*a`). */
function reversePattern(pattern: string): string {
  const chars = Array.from(pattern);
  const out: string[] = [];
  for (let i = 0; i < chars.length; ) {
    if (chars[i] === '\\' && i !== chars.length - 1) {
      out.unshift('\\' + chars[i + 1]);
      i += 2;
    } else {
      out.unshift(chars[i]);
      i++;
    }
  }
  return out.join('');
}

const reverse = (s: string) => Array.from(s).reverse().join('');

/** The shortest (or longest) matching suffix, found as a prefix of the reversed value. */
function trimSuffix(value: string, pattern: string, greedy: boolean): string {
  return reverse(trimPrefix(reverse(value), reversePattern(pattern), greedy));
}
