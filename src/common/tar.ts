/**
 * A streaming tar codec.
 *
 * The reader understands ustar, GNU (long names `L`/`K`, base-256 numbers),
 * PAX (`x` per entry, `g` global) and old V7 archives. It never concatenates
 * the stream: headers are read from the current chunk when they fit, and file
 * bodies are yielded as subarrays of the chunks the source produced.
 *
 * The writer produces deterministic POSIX (ustar + PAX) archives: the same
 * entries always give the same bytes.
 */
import { BerthError, ErrorCode, invalidArgument } from './errors.ts';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarHeader {
  /** Path as in the archive after PAX `path` / GNU long name (L) applied; not normalised. */
  name: string;
  type: TarEntryType;
  /** Permission bits only (0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Body bytes (0 for everything but files). */
  size: number;
  /** Seconds since the epoch; may be fractional (PAX). */
  mtime: number;
  /** Symlink or hardlink target ('' otherwise), PAX `linkpath` / GNU K applied. */
  linkname: string;
  devmajor: number;
  devminor: number;
  /** Extended attributes, from PAX `SCHILY.xattr.*` (and `LIBARCHIVE.xattr.*`). */
  xattrs: Record<string, Buffer>;
}

export interface TarEntry {
  header: TarHeader;
  /** Must be consumed (or abandoned) before asking for the next entry; the reader skips what was not read. */
  body: AsyncIterable<Buffer>;
}

export interface TarWriteEntry {
  header: Partial<TarHeader> & { name: string; type: TarEntryType };
  body?: Buffer | AsyncIterable<Buffer>;
}

const BLOCK = 512;
const EMPTY = Buffer.alloc(0);
/** Upper bounds for metadata bodies held in memory (GNU long names, PAX records). */
const MAX_LONG_NAME = 1 << 20;
const MAX_PAX = 16 << 20;

const invalid = (msg: string, cause?: unknown) => invalidArgument(`invalid tar: ${msg}`, cause);
const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;

// ---------------------------------------------------------------------------
// Reader

/** Pulls chunks from the source and hands out exact-size reads or subarrays. */
class ChunkReader {
  #it: AsyncIterator<Buffer | Uint8Array>;
  #signal: AbortSignal | undefined;
  #cur: Buffer = EMPTY;
  #pos = 0;
  #eof = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(source: AsyncIterable<Buffer | Uint8Array>, signal: AbortSignal | undefined) {
    this.#it = source[Symbol.asyncIterator]();
    this.#signal = signal;
  }

  #next(): Promise<IteratorResult<Buffer | Uint8Array>> {
    const signal = this.#signal;
    if (!signal) return this.#it.next();
    signal.throwIfAborted();
    // A per-pull listener (not one long-lived promise raced against every pull,
    // which would keep every chunk reachable until the signal fires).
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      this.#it.next().then(
        (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        (e: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      );
    });
  }

  /** Loads the next non-empty chunk; false at end of stream. */
  async #pull(): Promise<boolean> {
    while (!this.#eof) {
      const r = await this.#next();
      if (r.done) {
        this.#eof = true;
        break;
      }
      const v = r.value;
      if (v.byteLength === 0) continue;
      this.#cur = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
      this.#pos = 0;
      return true;
    }
    this.#cur = EMPTY;
    this.#pos = 0;
    return false;
  }

  /** Up to `max` bytes as a subarray of the current chunk; null at end of stream. */
  async chunk(max: number): Promise<Buffer | null> {
    if (this.#pos >= this.#cur.length && !(await this.#pull())) return null;
    const n = Math.min(max, this.#cur.length - this.#pos);
    const out = this.#cur.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    this.offset += n;
    return out;
  }

  /**
   * Exactly `n` bytes, or fewer if the stream ends first. The result may be a
   * view of a source chunk: copy what must outlive the next read.
   */
  async exact(n: number): Promise<Buffer> {
    const avail = this.#cur.length - this.#pos;
    if (avail >= n) {
      const out = this.#cur.subarray(this.#pos, this.#pos + n);
      this.#pos += n;
      this.offset += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      const c = await this.chunk(n - got);
      if (!c) return out.subarray(0, got);
      c.copy(out, got);
      got += c.length;
    }
    return out;
  }

  /** Skips `n` bytes; returns how many were skipped (fewer at end of stream). */
  async skip(n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      const c = await this.chunk(n - done);
      if (!c) break;
      done += c.length;
    }
    return done;
  }

  async close(): Promise<void> {
    this.#cur = EMPTY;
    if (!this.#eof) {
      this.#eof = true;
      await this.#it.return?.();
    }
  }
}

/** The body of one entry; the reader finishes it (skipping the rest) before the next entry. */
class EntryBody implements AsyncIterable<Buffer> {
  #r: ChunkReader;
  #name: string;
  #remaining: number;
  #padding: number;
  #finished = false;
  #abandoned = false;
  #lenientEnd: boolean;

  constructor(r: ChunkReader, name: string, size: number, lenientEnd = false) {
    this.#r = r;
    this.#name = name;
    this.#remaining = size;
    this.#padding = padding(size);
    this.#lenientEnd = lenientEnd;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer> {
    while (this.#remaining > 0 || this.#abandoned) {
      if (this.#finished) {
        throw new BerthError(ErrorCode.FailedPrecondition, `tar: body of "${this.#name}" read after the next entry was requested`);
      }
      const c = await this.#r.chunk(this.#remaining);
      if (!c) throw invalid(`truncated in entry ${JSON.stringify(this.#name)}`);
      this.#remaining -= c.length;
      yield c;
    }
  }

  async finish(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    const want = this.#remaining + this.#padding;
    this.#abandoned = this.#remaining > 0;
    this.#remaining = 0;
    const got = await this.#r.skip(want);
    // With lenientEnd, a stream may stop right after the last body, unpadded (the docker CLI's build context does).
    if (got !== want && !(this.#lenientEnd && got >= this.#remaining)) throw invalid(`truncated in entry ${JSON.stringify(this.#name)}`);
  }
}

/** Reads a NUL-terminated (or field-filling) string. */
function str(b: Buffer, off: number, len: number): string {
  let end = off;
  const max = off + len;
  while (end < max && b[end] !== 0) end++;
  return b.toString('utf8', off, end);
}

/** Octal (with space/NUL padding) or GNU base-256 numeric field; NaN when malformed. */
function num(b: Buffer, off: number, len: number): number {
  const first = b[off];
  if (first & 0x80) {
    // Base-256: big-endian two's complement, the top bit of the first byte a marker.
    const negative = (first & 0x40) !== 0;
    let v = negative ? ~first & 0x7f : first & 0x7f;
    for (let i = 1; i < len; i++) {
      const byte = negative ? ~b[off + i] & 0xff : b[off + i];
      v = v * 256 + byte;
      if (v > Number.MAX_SAFE_INTEGER) return NaN;
    }
    return negative ? -(v + 1) : v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i];
    if (c >= 0x30 && c <= 0x37) {
      v = v * 8 + (c - 0x30);
      digits++;
    } else break;
  }
  for (; i < end; i++) if (b[i] !== 0x20 && b[i] !== 0) return NaN;
  return digits === 0 ? 0 : v;
}

function checksumOk(b: Buffer): boolean {
  const stored = num(b, 148, 8);
  if (Number.isNaN(stored)) return false;
  let unsigned = 8 * 0x20;
  let signed = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) {
    if (i >= 148 && i < 156) continue;
    unsigned += b[i];
    signed += (b[i] << 24) >> 24;
  }
  // Some historic writers summed signed chars.
  return stored === unsigned || stored === signed;
}

function isZeroBlock(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

/** Attributes from PAX records that override header fields. */
interface PaxAttrs {
  path?: string;
  linkpath?: string;
  size?: number;
  uid?: number;
  gid?: number;
  uname?: string;
  gname?: string;
  mtime?: number;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, Buffer>;
  sparse?: boolean;
}

const DECIMAL = /^[0-9]+$/;
const FLOAT = /^-?[0-9]+(\.[0-9]*)?$/;

/** Parses `%d key=value\n` records into `into`; an empty value deletes the key. */
function parsePax(buf: Buffer, into: PaxAttrs, entryName: string): void {
  let pos = 0;
  const bad = (why: string) => invalid(`bad PAX header before entry ${JSON.stringify(entryName)}: ${why}`);
  while (pos < buf.length) {
    // Trailing NUL padding is tolerated.
    if (buf[pos] === 0) break;
    const sp = buf.indexOf(0x20, pos);
    if (sp < 0 || sp - pos > 20) throw bad('record without length');
    const lenText = buf.toString('latin1', pos, sp);
    if (!DECIMAL.test(lenText)) throw bad(`bad record length ${JSON.stringify(lenText)}`);
    const len = Number(lenText);
    const end = pos + len;
    if (len <= sp - pos + 1 || end > buf.length || buf[end - 1] !== 0x0a) throw bad('record length out of range');
    const eq = buf.indexOf(0x3d, sp + 1);
    if (eq < 0 || eq >= end - 1) throw bad('record without "="');
    const key = buf.toString('utf8', sp + 1, eq);
    const raw = buf.subarray(eq + 1, end - 1);
    pos = end;
    const value = raw.toString('utf8');
    const del = raw.length === 0;
    const int = (): number | undefined => {
      if (del) return undefined;
      if (!DECIMAL.test(value)) throw bad(`${key}=${JSON.stringify(value)} is not a number`);
      const n = Number(value);
      if (!Number.isSafeInteger(n)) throw bad(`${key}=${value} is out of range`);
      return n;
    };
    switch (key) {
      case 'path':
        into.path = del ? undefined : value;
        break;
      case 'linkpath':
        into.linkpath = del ? undefined : value;
        break;
      case 'uname':
        into.uname = del ? undefined : value;
        break;
      case 'gname':
        into.gname = del ? undefined : value;
        break;
      case 'size':
        into.size = int();
        break;
      case 'uid':
        into.uid = int();
        break;
      case 'gid':
        into.gid = int();
        break;
      case 'SCHILY.devmajor':
        into.devmajor = int();
        break;
      case 'SCHILY.devminor':
        into.devminor = int();
        break;
      case 'mtime':
        if (del) into.mtime = undefined;
        else {
          if (!FLOAT.test(value)) throw bad(`mtime=${JSON.stringify(value)} is not a number`);
          into.mtime = Number(value);
        }
        break;
      default:
        if (key.startsWith('SCHILY.xattr.')) {
          const name = key.slice('SCHILY.xattr.'.length);
          into.xattrs ??= {};
          if (del) delete into.xattrs[name];
          // Copy: `raw` may be a view of a large source chunk.
          else into.xattrs[name] = Buffer.from(raw);
        } else if (key.startsWith('LIBARCHIVE.xattr.')) {
          let name: string;
          try {
            name = decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length));
          } catch (e) {
            throw bad(`bad xattr name in ${JSON.stringify(key)}`);
          }
          into.xattrs ??= {};
          if (del) delete into.xattrs[name];
          else if (!(name in into.xattrs)) into.xattrs[name] = Buffer.from(value, 'base64');
        } else if (key.startsWith('GNU.sparse.')) {
          into.sparse = true;
        }
      // Others (atime, ctime, comment, charset, hdrcharset…) carry nothing we keep.
    }
  }
}

const HEADER_ONLY: Record<string, TarEntryType> = {
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'directory',
  '6': 'fifo',
};

/**
 * Reads a tar stream entry by entry. Each entry's body must be consumed before
 * the next entry is requested; whatever was not read is skipped. Malformed,
 * truncated or corrupt input fails with InvalidArgument.
 */
export async function* readTar(
  source: AsyncIterable<Buffer | Uint8Array>,
  opts: { signal?: AbortSignal; /** Accept a last entry without its padding and end blocks. */ lenientEnd?: boolean } = {},
): AsyncGenerator<TarEntry> {
  const r = new ChunkReader(source, opts.signal);
  const global: PaxAttrs = {};
  let previous = '';
  try {
    for (;;) {
      let pax: PaxAttrs | undefined;
      let longName: string | undefined;
      let longLink: string | undefined;
      let block: Buffer;
      let typeflag: string;
      const where = () => (previous ? `after entry ${JSON.stringify(previous)}` : 'at the start');
      const metaPending = () => pax !== undefined || longName !== undefined || longLink !== undefined;

      // Read headers until a real entry, folding metadata headers into it.
      for (;;) {
        const at = r.offset;
        block = await r.exact(BLOCK);
        if (block.length === 0) {
          if (metaPending()) throw invalid(`truncated ${where()}: extended header without its entry`);
          return;
        }
        if (at === 0 && block[0] === 0x1f && block[1] === 0x8b) throw invalid('the stream is gzip-compressed');
        if (block.length < BLOCK) throw invalid(`truncated header ${where()} (offset ${at})`);
        if (isZeroBlock(block)) {
          if (metaPending()) throw invalid(`zero block ${where()} where an entry was expected after its extended header`);
          // End of archive: a second zero block, or the end of the stream.
          const next = await r.exact(BLOCK);
          if (next.length !== 0 && !isZeroBlock(next)) throw invalid(`lone zero block ${where()} (offset ${at}) followed by data`);
          // Read the source to its end (record padding, trailing bytes) so that
          // whatever is upstream, such as a digest check, sees the whole stream.
          while (await r.chunk(Infinity)) {}
          return;
        }
        if (!checksumOk(block)) throw invalid(`bad header checksum ${where()} (offset ${at})`);
        typeflag = String.fromCharCode(block[156]);
        if (typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K') {
          const size = num(block, 124, 12);
          const limit = typeflag === 'L' || typeflag === 'K' ? MAX_LONG_NAME : MAX_PAX;
          if (!(size >= 0) || size > limit) throw invalid(`extended header of ${size} bytes ${where()} is too large`);
          const data = await r.exact(size);
          if (data.length < size || (await r.skip(padding(size))) !== padding(size)) {
            throw invalid(`truncated extended header ${where()}`);
          }
          if (typeflag === 'x') parsePax(data, (pax ??= {}), previous);
          else if (typeflag === 'g') parsePax(data, global, previous);
          else if (typeflag === 'L') longName = str(data, 0, data.length);
          else longLink = str(data, 0, data.length);
          continue;
        }
        break;
      }

      const magic = block.toString('latin1', 257, 263);
      const ustar = magic === 'ustar\0';
      const gnu = magic === 'ustar ';
      let name = str(block, 0, 100);
      if (ustar) {
        const prefix = str(block, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      const p: PaxAttrs = { ...global, ...definedOnly(pax) };
      // A global header's path/linkpath/size would apply to every entry; that is never meant.
      if (pax?.path === undefined) delete p.path;
      if (pax?.linkpath === undefined) delete p.linkpath;
      if (pax?.size === undefined) delete p.size;
      name = longName ?? p.path ?? name;
      const fieldName = JSON.stringify(name);
      if (p.sparse || typeflag === 'S') {
        throw new BerthError(ErrorCode.NotImplemented, `tar: sparse file ${fieldName} is not supported`);
      }

      let type: TarEntryType;
      let hasBody = false;
      let skipBody = false;
      if (typeflag === '0' || typeflag === '7') {
        type = 'file';
        hasBody = true;
      } else if (typeflag === '\0') {
        // V7: a trailing slash marked directories.
        type = name.endsWith('/') ? 'directory' : 'file';
        hasBody = type === 'file';
      } else if (Object.hasOwn(HEADER_ONLY, typeflag)) {
        type = HEADER_ONLY[typeflag];
      } else if (typeflag === 'D') {
        // GNU dumpdir: a directory whose body lists its contents.
        type = 'directory';
        skipBody = true;
      } else if (typeflag === 'V') {
        // GNU volume label: not an entry.
        const size = num(block, 124, 12);
        if (!(size >= 0)) throw invalid(`bad size in volume header ${where()}`);
        if ((await r.skip(size + padding(size))) !== size + padding(size)) throw invalid(`truncated ${where()}`);
        continue;
      } else {
        throw invalid(`entry ${fieldName} has unsupported type ${JSON.stringify(typeflag)}`);
      }

      const field = (off: number, len: number, what: string): number => {
        const v = num(block, off, len);
        if (Number.isNaN(v)) throw invalid(`bad ${what} field in entry ${fieldName}`);
        return v;
      };
      const rawSize = p.size ?? field(124, 12, 'size');
      if (rawSize < 0) throw invalid(`negative size in entry ${fieldName}`);
      const mode = field(100, 8, 'mode') & 0o7777;
      const header: TarHeader = {
        name,
        type,
        mode,
        uid: p.uid ?? field(108, 8, 'uid'),
        gid: p.gid ?? field(116, 8, 'gid'),
        uname: p.uname ?? (ustar || gnu ? str(block, 265, 32) : ''),
        gname: p.gname ?? (ustar || gnu ? str(block, 297, 32) : ''),
        size: hasBody ? rawSize : 0,
        mtime: p.mtime ?? field(136, 12, 'mtime'),
        linkname: type === 'symlink' || type === 'hardlink' ? (longLink ?? p.linkpath ?? str(block, 157, 100)) : '',
        devmajor: p.devmajor ?? (ustar || gnu ? field(329, 8, 'devmajor') : 0),
        devminor: p.devminor ?? (ustar || gnu ? field(337, 8, 'devminor') : 0),
        xattrs: { ...global.xattrs, ...pax?.xattrs },
      };
      if (header.uid < 0 || header.gid < 0) throw invalid(`negative uid/gid in entry ${fieldName}`);

      if (skipBody) {
        const want = rawSize + padding(rawSize);
        if ((await r.skip(want)) !== want) throw invalid(`truncated in entry ${fieldName}`);
      }
      const body = new EntryBody(r, name, hasBody ? rawSize : 0, opts.lenientEnd);
      previous = name;
      yield { header, body };
      await body.finish();
    }
  } finally {
    await r.close();
  }
}

function definedOnly(p: PaxAttrs | undefined): PaxAttrs {
  const out: PaxAttrs = {};
  if (!p) return out;
  for (const [k, v] of Object.entries(p)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

// ---------------------------------------------------------------------------
// Writer

const OCTAL_MAX = (digits: number) => 8 ** digits - 1;
const ASCII = /^[\x20-\x7e]*$/;

function writeStr(b: Buffer, off: number, len: number, s: string): void {
  b.write(s, off, len, 'utf8');
}

function writeOctal(b: Buffer, off: number, len: number, v: number): void {
  b.write(v.toString(8).padStart(len - 1, '0'), off, len - 1, 'latin1');
  b[off + len - 1] = 0;
}

/** GNU base-256 for values too large for the octal field (a PAX record carries them too). */
function writeBase256(b: Buffer, off: number, len: number, v: number): void {
  let x = BigInt(v);
  if (x < 0n) x = (1n << BigInt(len * 8)) + x;
  for (let i = len - 1; i >= 0; i--) {
    b[off + i] = Number(x & 0xffn);
    x >>= 8n;
  }
  b[off] = v < 0 ? 0xff : (b[off] & 0x7f) | 0x80;
}

function writeNumber(b: Buffer, off: number, len: number, v: number): void {
  if (Number.isInteger(v) && v >= 0 && v <= OCTAL_MAX(len - 1)) writeOctal(b, off, len, v);
  else writeBase256(b, off, len, Math.floor(v));
}

/** Splits a path into ustar prefix (≤155 bytes) and name (≤100 bytes), or null. */
function ustarSplit(name: string): [prefix: string, name: string] | null {
  const bytes = Buffer.byteLength(name);
  if (bytes <= 100) return ['', name];
  if (bytes > 256) return null;
  // The longest prefix that leaves a name that fits: deterministic and keeps the name short.
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] !== '/') continue;
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) > 155) continue;
    if (rest.length === 0 || Buffer.byteLength(rest) > 100) return null;
    return [prefix, rest];
  }
  return null;
}

/** The first `max` bytes of `s`, cut on a UTF-8 character boundary. */
function truncateUtf8(s: string, max: number): string {
  const b = Buffer.from(s);
  if (b.length <= max) return s;
  let end = max;
  while (end > 0 && (b[end] & 0xc0) === 0x80) end--;
  return b.toString('utf8', 0, end);
}

function paxRecord(key: string, value: Buffer): Buffer {
  const rest = Buffer.byteLength(key) + value.length + 3; // ' ', '=', '\n'
  let len = rest + String(rest).length;
  if (String(len).length !== String(rest).length) len = rest + String(len).length;
  const head = Buffer.from(`${len} ${key}=`);
  return Buffer.concat([head, value, Buffer.from('\n')]);
}

function formatMtime(m: number): string {
  if (Number.isInteger(m)) return String(m);
  return m.toFixed(9).replace(/0+$/, '').replace(/\.$/, '');
}

/** A write entry's header with every field filled in. */
type Normalised = TarHeader;

const TYPEFLAG: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  directory: '5',
  fifo: '6',
};

function normalise(e: TarWriteEntry): Normalised {
  const h = e.header;
  const bad = (why: string) => invalidArgument(`tar: entry ${JSON.stringify(h.name)}: ${why}`);
  if (!Object.hasOwn(TYPEFLAG, h.type)) throw bad(`unknown type ${JSON.stringify(h.type)}`);
  if (!h.name || h.name.includes('\0')) throw bad('empty name or name with NUL');
  const linkname = h.linkname ?? '';
  if (linkname.includes('\0')) throw bad('link name with NUL');
  if ((h.type === 'symlink' || h.type === 'hardlink') && !linkname) throw bad('link without a target');
  let size = 0;
  if (h.type === 'file') {
    if (h.size !== undefined) size = h.size;
    else if (Buffer.isBuffer(e.body)) size = e.body.length;
    else if (e.body !== undefined) throw bad('a streamed body needs header.size');
  } else if (e.body !== undefined || (h.size !== undefined && h.size !== 0)) {
    throw bad(`a ${h.type} has no body`);
  }
  const int = (v: number, what: string) => {
    if (!Number.isSafeInteger(v) || v < 0) throw bad(`${what} ${v} is not a non-negative integer`);
    return v;
  };
  const mtime = h.mtime ?? 0;
  if (!Number.isFinite(mtime)) throw bad(`mtime ${mtime} is not finite`);
  const xattrs = h.xattrs ?? {};
  for (const k of Object.keys(xattrs)) {
    if (!k || k.includes('=') || k.includes('\0')) throw bad(`xattr name ${JSON.stringify(k)} cannot be stored`);
  }
  const devmajor = int(h.devmajor ?? 0, 'devmajor');
  const devminor = int(h.devminor ?? 0, 'devminor');
  if (devmajor > OCTAL_MAX(7) || devminor > OCTAL_MAX(7)) throw bad('device number too large');
  for (const [k, v] of [['uname', h.uname], ['gname', h.gname]] as const) {
    if (v?.includes('\0')) throw bad(`${k} with NUL`);
  }
  return {
    name: h.name,
    type: h.type,
    mode: int(h.mode ?? (h.type === 'directory' ? 0o755 : 0o644), 'mode') & 0o7777,
    uid: int(h.uid ?? 0, 'uid'),
    gid: int(h.gid ?? 0, 'gid'),
    uname: h.uname ?? '',
    gname: h.gname ?? '',
    size: int(size, 'size'),
    mtime,
    linkname: h.type === 'symlink' || h.type === 'hardlink' ? linkname : '',
    devmajor,
    devminor,
    xattrs,
  };
}

function checksum(b: Buffer): void {
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += b[i];
  b.write(sum.toString(8).padStart(6, '0'), 148, 6, 'latin1');
  b[154] = 0;
  b[155] = 0x20;
}

function ustarBlock(
  name: string,
  prefix: string,
  typeflag: string,
  f: { mode: number; uid: number; gid: number; size: number; mtime: number; linkname: string; uname: string; gname: string; devmajor: number; devminor: number },
): Buffer {
  const b = Buffer.alloc(BLOCK);
  writeStr(b, 0, 100, name);
  writeOctal(b, 100, 8, f.mode);
  writeNumber(b, 108, 8, f.uid);
  writeNumber(b, 116, 8, f.gid);
  writeNumber(b, 124, 12, f.size);
  writeNumber(b, 136, 12, f.mtime);
  b.write(typeflag, 156, 1, 'latin1');
  writeStr(b, 157, 100, f.linkname);
  b.write('ustar\x0000', 257, 8, 'latin1');
  writeStr(b, 265, 32, f.uname);
  writeStr(b, 297, 32, f.gname);
  writeOctal(b, 329, 8, f.devmajor);
  writeOctal(b, 337, 8, f.devminor);
  writeStr(b, 345, 155, prefix);
  checksum(b);
  return b;
}

/** The header block(s) for one entry: an optional PAX `x` header, then ustar. */
function encodeHeader(h: Normalised): Buffer {
  const records: Buffer[] = [];
  const rec = (k: string, v: string) => records.push(paxRecord(k, Buffer.from(v)));

  const split = ASCII.test(h.name) ? ustarSplit(h.name) : null;
  let prefix = '';
  let name: string;
  if (split) [prefix, name] = split;
  else {
    rec('path', h.name);
    const fallback = ustarSplit(h.name);
    if (fallback) [prefix, name] = fallback;
    else name = truncateUtf8(h.name, 100);
  }
  let linkname = h.linkname;
  if (!ASCII.test(linkname) || Buffer.byteLength(linkname) > 100) {
    rec('linkpath', linkname);
    linkname = truncateUtf8(linkname, 100);
  }
  if (h.size > OCTAL_MAX(11)) rec('size', String(h.size));
  if (h.uid > OCTAL_MAX(7)) rec('uid', String(h.uid));
  if (h.gid > OCTAL_MAX(7)) rec('gid', String(h.gid));
  let uname = h.uname;
  let gname = h.gname;
  if (!ASCII.test(uname) || Buffer.byteLength(uname) > 31) {
    rec('uname', uname);
    uname = truncateUtf8(uname, 31);
  }
  if (!ASCII.test(gname) || Buffer.byteLength(gname) > 31) {
    rec('gname', gname);
    gname = truncateUtf8(gname, 31);
  }
  if (!Number.isInteger(h.mtime) || h.mtime < 0 || h.mtime > OCTAL_MAX(11)) rec('mtime', formatMtime(h.mtime));
  for (const k of Object.keys(h.xattrs).sort()) {
    const v = h.xattrs[k];
    records.push(paxRecord(`SCHILY.xattr.${k}`, Buffer.isBuffer(v) ? v : Buffer.from(v)));
  }

  const main = ustarBlock(name, prefix, TYPEFLAG[h.type], { ...h, linkname, uname, gname });
  if (records.length === 0) return main;

  const data = Buffer.concat(records);
  const base = h.name.replace(/\/+$/, '').split('/').pop() || 'entry';
  const paxName = truncateUtf8(`PaxHeaders/${base.replace(/[^\x20-\x7e]/g, '_')}`, 100);
  const paxHead = ustarBlock(paxName, '', 'x', {
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: data.length,
    mtime: 0,
    linkname: '',
    uname: '',
    gname: '',
    devmajor: 0,
    devminor: 0,
  });
  const out = Buffer.alloc(BLOCK + data.length + padding(data.length) + BLOCK);
  paxHead.copy(out, 0);
  data.copy(out, BLOCK);
  main.copy(out, out.length - BLOCK);
  return out;
}

/**
 * Writes entries as a POSIX tar stream (ustar headers, PAX where ustar cannot
 * hold a value), padded and terminated by two zero blocks. Output is a pure
 * function of the entries. A body whose length differs from header.size fails
 * with InvalidArgument.
 */
export async function* writeTar(entries: AsyncIterable<TarWriteEntry> | Iterable<TarWriteEntry>): AsyncGenerator<Buffer> {
  for await (const e of entries) {
    const h = normalise(e);
    yield encodeHeader(h);
    if (h.type !== 'file') continue;
    const mismatch = (n: number) =>
      invalidArgument(`tar: entry ${JSON.stringify(h.name)}: body has ${n} bytes but header.size is ${h.size}`);
    let written = 0;
    if (Buffer.isBuffer(e.body)) {
      if (e.body.length !== h.size) throw mismatch(e.body.length);
      if (e.body.length) yield e.body;
      written = e.body.length;
    } else if (e.body) {
      for await (const c of e.body) {
        const chunk = Buffer.isBuffer(c) ? c : Buffer.from((c as Uint8Array).buffer, (c as Uint8Array).byteOffset, (c as Uint8Array).byteLength);
        written += chunk.length;
        if (written > h.size) throw mismatch(written);
        if (chunk.length) yield chunk;
      }
    }
    if (written !== h.size) throw mismatch(written);
    const pad = padding(h.size);
    if (pad) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(2 * BLOCK);
}
