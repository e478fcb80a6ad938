import type { ServerResponse } from 'node:http';

/** Docker's JSON message stream (load, import, pull, build): one JSON object per line. */
export class JsonMessageWriter {
  #res: ServerResponse;

  constructor(res: ServerResponse) {
    this.#res = res;
  }

  #ensureHead(): void {
    if (!this.#res.headersSent) this.#res.writeHead(200, { 'Content-Type': 'application/json' });
  }

  write(msg: Record<string, unknown>): void {
    this.#ensureHead();
    this.#res.write(JSON.stringify(msg) + '\n');
  }

  stream(text: string): void {
    this.write({ stream: text });
  }

  status(text: string, id?: string): void {
    this.write(id ? { status: text, id } : { status: text });
  }

  end(): void {
    this.#ensureHead();
    this.#res.end();
  }
}
