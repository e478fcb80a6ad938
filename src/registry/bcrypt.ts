// bcrypt (the `$2a$`, `$2b$` and `$2y$` forms that `htpasswd -B` writes), written here so the
// registry needs no runtime dependency. Blowfish's initial P-array and S-boxes are the hex
// digits of pi's fractional part; rather than carry 4 KiB of constants, they are computed once
// with Machin's formula in BigInt fixed point (a few milliseconds), and the unit test checks
// them against the published first and last words.
import { randomBytes, timingSafeEqual } from 'node:crypto';

const WORDS = 18 + 4 * 256;
let PI_WORDS: Uint32Array | undefined;

/** The first `WORDS` 32-bit words of pi's fractional part. */
export function piWords(): Uint32Array {
  if (PI_WORDS) return PI_WORDS;
  const bits = BigInt(WORDS * 32);
  const guard = 64n;
  const one = 1n << (bits + guard);
  const atanInv = (x: bigint): bigint => {
    let sum = 0n;
    let power = one / x;
    const x2 = x * x;
    for (let k = 1n, sign = 1n; power !== 0n; k += 2n, sign = -sign) {
      sum += sign * (power / k);
      power /= x2;
    }
    return sum;
  };
  const pi = 16n * atanInv(5n) - 4n * atanInv(239n);
  const frac = (pi - 3n * one) >> guard;
  const hex = frac.toString(16).padStart(WORDS * 8, '0');
  const out = new Uint32Array(WORDS);
  for (let i = 0; i < WORDS; i++) out[i] = parseInt(hex.slice(i * 8, i * 8 + 8), 16);
  PI_WORDS = out;
  return out;
}

class Blowfish {
  P: Uint32Array;
  S: Uint32Array; // the four S-boxes, 256 words each
  constructor() {
    const w = piWords();
    this.P = w.slice(0, 18);
    this.S = w.slice(18);
  }

  #f(x: number): number {
    const S = this.S;
    return (((S[x >>> 24] + S[256 | ((x >>> 16) & 0xff)]) ^ S[512 | ((x >>> 8) & 0xff)]) + S[768 | (x & 0xff)]) >>> 0;
  }

  /** Encrypts the block in `lr` in place. */
  encrypt(lr: Uint32Array, off: number): void {
    const P = this.P;
    let l = lr[off] ^ P[0];
    let r = lr[off + 1];
    for (let i = 1; i <= 16; i += 2) {
      r ^= this.#f(l) ^ P[i];
      l ^= this.#f(r) ^ P[i + 1];
    }
    lr[off] = (r ^ P[17]) >>> 0;
    lr[off + 1] = l >>> 0;
  }

  /** bcrypt's ExpandKey: the key into P, then P and S re-encrypted, mixing in the salt when there is one. */
  expand(key: Uint8Array, salt: Uint8Array | undefined): void {
    let kpos = 0;
    const keyWord = (): number => {
      let w = 0;
      for (let i = 0; i < 4; i++) {
        w = (w << 8) | key[kpos];
        kpos = (kpos + 1) % key.length;
      }
      return w;
    };
    for (let i = 0; i < 18; i++) this.P[i] ^= keyWord();
    let spos = 0;
    const saltWord = (): number => {
      let w = 0;
      for (let i = 0; i < 4; i++) {
        w = (w << 8) | salt![spos];
        spos = (spos + 1) % salt!.length;
      }
      return w;
    };
    const lr = new Uint32Array(2);
    const fill = (arr: Uint32Array) => {
      for (let i = 0; i < arr.length; i += 2) {
        if (salt) {
          lr[0] ^= saltWord();
          lr[1] ^= saltWord();
        }
        this.encrypt(lr, 0);
        arr[i] = lr[0];
        arr[i + 1] = lr[1];
      }
    };
    fill(this.P);
    fill(this.S);
  }
}

const BCRYPT_ALPHABET = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const STD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const toStd = (s: string) => s.replace(/./g, (c) => STD_ALPHABET[BCRYPT_ALPHABET.indexOf(c)]);
const fromStd = (s: string) => s.replace(/=+$/, '').replace(/./g, (c) => BCRYPT_ALPHABET[STD_ALPHABET.indexOf(c)]);

const HASH_RE = /^\$2([aby])\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;

function compute(password: string, cost: number, salt: Uint8Array): Buffer {
  // The key is the password with its NUL terminator, at most 72 bytes.
  const key = Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]).subarray(0, 72);
  const bf = new Blowfish();
  bf.expand(key, salt);
  for (let i = 0, rounds = 2 ** cost; i < rounds; i++) {
    bf.expand(key, undefined);
    bf.expand(salt, undefined);
  }
  const text = Buffer.from('OrpheanBeholderScryDoubt', 'latin1');
  const cdata = new Uint32Array(6);
  for (let i = 0; i < 6; i++) cdata[i] = text.readUInt32BE(i * 4);
  for (let i = 0; i < 64; i++) for (let j = 0; j < 6; j += 2) bf.encrypt(cdata, j);
  const out = Buffer.alloc(24);
  for (let i = 0; i < 6; i++) out.writeUInt32BE(cdata[i], i * 4);
  return out.subarray(0, 23);
}

/** True when `password` matches the bcrypt hash; false for a wrong password or a hash that is not bcrypt. */
export function bcryptVerify(password: string, hash: string): boolean {
  const m = HASH_RE.exec(hash);
  if (!m) return false;
  const cost = Number(m[2]);
  if (cost < 4 || cost > 31) return false;
  const salt = Buffer.from(toStd(m[3]), 'base64');
  const want = Buffer.from(toStd(m[4]), 'base64');
  const got = compute(password, cost, salt);
  return want.length === got.length && timingSafeEqual(want, got);
}

/** A `$2y$` hash of `password`, as `htpasswd -B -C cost` makes. */
export function bcryptHash(password: string, cost = 10): string {
  const salt = randomBytes(16);
  const saltText = fromStd(salt.toString('base64')).slice(0, 22);
  const hashText = fromStd(compute(password, cost, Buffer.from(toStd(saltText), 'base64')).toString('base64'));
  return `$2y$${String(cost).padStart(2, '0')}$${saltText}${hashText}`;
}
