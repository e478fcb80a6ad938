// The HTTP face of the registry: the OCI Distribution Spec v1.1 routes (pull, push, content
// discovery, content management), Docker's `/v1/search`, and the token endpoint. Each handler
// reads or streams through the store; nothing here buffers a blob.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../common/digest.ts';
import { isBerthError } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { MediaType } from '../images/oci.ts';
import type { Access, Authenticator } from './auth.ts';
import { RegistryError, registryError, sendError } from './errors.ts';
import { layout } from './layout.ts';
import { checkDigest, checkName, isRepositoryName, isTag } from './names.ts';
import { MANIFEST_MAX, type RegistryStore } from './store.ts';
import type { Uploads } from './uploads.ts';

export interface RegistryHandlerOptions {
  store: RegistryStore;
  uploads: Uploads;
  auth: Authenticator;
  log: Logger;
  /** Log every request (debug level only: a busy registry must not pay for logging). */
  logRequests?: boolean;
  /** Refuse every write with DENIED: for maintenance, such as a gc against a serving registry. */
  readOnly?: boolean;
}

type Handler = (req: IncomingMessage, res: ServerResponse, ctx: RouteContext) => Promise<void>;

interface RouteContext {
  name: string;
  /** The last path segment: a reference, a digest or an upload id. */
  ref: string;
  query: URLSearchParams;
  head: boolean;
}

/** Errors that only mean the client went away: not worth a warning. */
const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_PREMATURE_CLOSE', 'ERR_STREAM_WRITE_AFTER_END']);

const API_VERSION = { 'Docker-Distribution-API-Version': 'registry/2.0' };
/** Search results per page when the client names none, and at most. */
const SEARCH_DEFAULT = 25;
const SEARCH_MAX = 100;

const ROUTES: { re: RegExp; kind: 'manifests' | 'upload' | 'uploads' | 'blobs' | 'tags' | 'referrers' }[] = [
  { re: /^\/v2\/(.+)\/manifests\/([^/]+)$/, kind: 'manifests' },
  { re: /^\/v2\/(.+)\/blobs\/uploads\/?()$/, kind: 'uploads' },
  { re: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, kind: 'upload' },
  { re: /^\/v2\/(.+)\/blobs\/([^/]+)$/, kind: 'blobs' },
  { re: /^\/v2\/(.+)\/tags\/list()$/, kind: 'tags' },
  { re: /^\/v2\/(.+)\/referrers\/([^/]+)$/, kind: 'referrers' },
];

/** The request handler for `http.createServer`. */
export function registryHandler(opts: RegistryHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const { store, uploads, auth, log } = opts;

  const pull = (name: string): Access => ({ type: 'repository', name, actions: ['pull'] });
  const push = (name: string): Access => ({ type: 'repository', name, actions: ['push'] });
  const del = (name: string): Access => ({ type: 'repository', name, actions: ['delete'] });

  // ------------------------------------------------------------------ manifests

  const getManifest: Handler = async (req, res, { name, ref, head }) => {
    checkReference(ref);
    const m = await store.getManifest(name, ref);
    if (!m) throw registryError('MANIFEST_UNKNOWN', `manifest ${ref} unknown to ${name}`, { detail: { name, reference: ref } });
    res.writeHead(200, {
      ...API_VERSION,
      'Content-Type': m.mediaType,
      'Content-Length': m.bytes.length,
      'Docker-Content-Digest': m.digest,
      ETag: `"${m.digest}"`,
    });
    res.end(head ? undefined : m.bytes);
  };

  const putManifest: Handler = async (req, res, { name, ref }) => {
    checkReference(ref);
    const bytes = await readLimited(req, MANIFEST_MAX);
    const contentType = req.headers['content-type']?.split(';')[0].trim();
    const { digest, subject } = await store.putManifest(name, ref, bytes, contentType);
    const headers: Record<string, string | number> = { ...API_VERSION, Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': 0 };
    if (subject) headers['OCI-Subject'] = subject;
    res.writeHead(201, headers);
    res.end();
  };

  const deleteManifest: Handler = async (req, res, { name, ref }) => {
    checkReference(ref);
    const done = ref.includes(':') ? await store.deleteManifest(name, ref as Digest) : await store.deleteTag(name, ref);
    if (!done) throw registryError('MANIFEST_UNKNOWN', `manifest ${ref} unknown to ${name}`, { detail: { name, reference: ref } });
    res.writeHead(202, { ...API_VERSION, 'Content-Length': 0 });
    res.end();
  };

  // ------------------------------------------------------------------ blobs

  const getBlob: Handler = async (req, res, { name, ref, head }) => {
    const digest = checkDigest(ref);
    const size = await store.blobSize(name, digest);
    if (size === undefined) throw registryError('BLOB_UNKNOWN', `blob ${digest} unknown to ${name}`, { detail: { digest } });
    const range = parseRange(req.headers.range, size);
    const headers: Record<string, string | number> = {
      ...API_VERSION,
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': digest,
      'Accept-Ranges': 'bytes',
      ETag: `"${digest}"`,
      'Cache-Control': 'max-age=31536000',
    };
    if (range === 'unsatisfiable') {
      throw registryError('BLOB_UNKNOWN', `range ${req.headers.range} not satisfiable for ${size} bytes`, { status: 416, headers: { 'Content-Range': `bytes */${size}` } });
    }
    const status = range ? 206 : 200;
    if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
    headers['Content-Length'] = range ? range.end - range.start + 1 : size;
    if (head || size === 0) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    res.writeHead(status, headers);
    const driver = store.driver;
    // The size is known: an explicit range spares the driver a second stat.
    const span = range ?? { start: 0, end: size - 1 };
    if (driver.send) {
      await driver.send(layout.blob(digest), res, span);
      res.end();
    } else {
      await pipeline(await driver.reader(layout.blob(digest), span), res);
    }
  };

  const deleteBlob: Handler = async (req, res, { name, ref }) => {
    const digest = checkDigest(ref);
    if (!(await store.unlinkBlob(name, digest))) throw registryError('BLOB_UNKNOWN', `blob ${digest} unknown to ${name}`, { detail: { digest } });
    res.writeHead(202, { ...API_VERSION, 'Docker-Content-Digest': digest, 'Content-Length': 0 });
    res.end();
  };

  // ------------------------------------------------------------------ uploads

  const blobCreated = (res: ServerResponse, name: string, digest: Digest) => {
    res.writeHead(201, { ...API_VERSION, Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': 0 });
    res.end();
  };

  const uploadAccepted = (res: ServerResponse, name: string, id: string, size: number, status = 202) => {
    res.writeHead(status, {
      ...API_VERSION,
      Location: `/v2/${name}/blobs/uploads/${id}`,
      Range: `0-${Math.max(0, size - 1)}`,
      'Docker-Upload-UUID': id,
      'Content-Length': 0,
    });
    res.end();
  };

  const startUpload: Handler = async (req, res, { name, query }) => {
    const mount = query.get('mount');
    const from = query.get('from');
    if (mount !== null) {
      const digest = checkDigest(mount);
      // A mount the client may not read from, or of a blob the source lacks, becomes an ordinary upload, as the spec asks.
      if (from && isRepositoryName(from) && auth.allows(req, pull(from)) && (await store.blobSize(from, digest)) !== undefined) {
        await store.linkBlob(name, digest);
        return blobCreated(res, name, digest);
      }
    }
    const single = query.get('digest');
    if (single !== null) {
      const digest = checkDigest(single);
      const id = await uploads.start(name);
      try {
        await uploads.append(name, id, req, { length: contentLength(req) });
        await uploads.finish(name, id, digest);
      } catch (e) {
        await uploads.cancel(name, id);
        throw e;
      }
      return blobCreated(res, name, digest);
    }
    req.resume();
    const id = await uploads.start(name);
    uploadAccepted(res, name, id, 0);
  };

  const patchUpload: Handler = async (req, res, { name, ref }) => {
    const range = parseContentRange(req.headers['content-range']);
    const size = await uploads.append(name, ref, req, { ...range, length: contentLength(req) });
    uploadAccepted(res, name, ref, size);
  };

  const putUpload: Handler = async (req, res, { name, ref, query }) => {
    const digest = checkDigest(query.get('digest'));
    const length = contentLength(req);
    const range = parseContentRange(req.headers['content-range']);
    if (await uploads.size(name, ref) === undefined) throw registryError('BLOB_UPLOAD_UNKNOWN', `upload ${ref.slice(0, 64)} is unknown to ${name}`);
    if (length !== 0 && (length !== undefined || req.headers['transfer-encoding'])) await uploads.append(name, ref, req, { ...range, length });
    else req.resume();
    await uploads.finish(name, ref, digest);
    blobCreated(res, name, digest);
  };

  const uploadStatus: Handler = async (req, res, { name, ref }) => {
    const size = await uploads.size(name, ref);
    if (size === undefined) throw registryError('BLOB_UPLOAD_UNKNOWN', `upload ${ref.slice(0, 64)} is unknown to ${name}`);
    uploadAccepted(res, name, ref, size, 204);
  };

  const cancelUpload: Handler = async (req, res, { name, ref }) => {
    if (await uploads.size(name, ref) === undefined) throw registryError('BLOB_UPLOAD_UNKNOWN', `upload ${ref.slice(0, 64)} is unknown to ${name}`);
    await uploads.cancel(name, ref);
    res.writeHead(204, API_VERSION);
    res.end();
  };

  // ------------------------------------------------------------------ discovery

  const listTags: Handler = async (req, res, { name, query, head }) => {
    const tags = await store.tags(name);
    if (!tags) throw registryError('NAME_UNKNOWN', `repository ${name} not known to registry`, { detail: { name } });
    const page = paginate(tags, query, `/v2/${name}/tags/list`);
    sendJson(res, 200, { name, tags: page.items }, head, page.link ? { Link: page.link } : {});
  };

  const catalog = async (req: IncomingMessage, res: ServerResponse, query: URLSearchParams, head: boolean) => {
    const page = paginate(await store.catalog(), query, '/v2/_catalog');
    sendJson(res, 200, { repositories: page.items }, head, page.link ? { Link: page.link } : {});
  };

  const referrers: Handler = async (req, res, { name, ref, query, head }) => {
    const digest = checkDigest(ref);
    let manifests = await store.referrers(name, digest);
    const artifactType = query.get('artifactType');
    const headers: Record<string, string> = {};
    if (artifactType !== null) {
      manifests = manifests.filter((m) => m.artifactType === artifactType);
      headers['OCI-Filters-Applied'] = 'artifactType';
    }
    sendJson(res, 200, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }, head, headers, MediaType.OciIndex);
  };

  const search = async (req: IncomingMessage, res: ServerResponse, query: URLSearchParams, head: boolean) => {
    const q = (query.get('q') ?? '').toLowerCase();
    const n = Math.min(SEARCH_MAX, Math.max(1, Number(query.get('n')) || SEARCH_DEFAULT));
    const hits = (await store.catalog()).filter((r) => r.includes(q));
    const results = hits.slice(0, n).map((name) => ({ name, description: '', star_count: 0, is_official: false, is_automated: false }));
    sendJson(res, 200, { num_results: hits.length, num_pages: Math.max(1, Math.ceil(hits.length / n)), page: 1, page_size: n, query: query.get('q') ?? '', results }, head);
  };

  // ------------------------------------------------------------------ dispatch

  const TABLE: Record<string, Record<string, { handler: Handler; access: (name: string) => Access }>> = {
    manifests: { GET: { handler: getManifest, access: pull }, HEAD: { handler: getManifest, access: pull }, PUT: { handler: putManifest, access: push }, DELETE: { handler: deleteManifest, access: del } },
    blobs: { GET: { handler: getBlob, access: pull }, HEAD: { handler: getBlob, access: pull }, DELETE: { handler: deleteBlob, access: del } },
    uploads: { POST: { handler: startUpload, access: push } },
    upload: { GET: { handler: uploadStatus, access: push }, PATCH: { handler: patchUpload, access: push }, PUT: { handler: putUpload, access: push }, DELETE: { handler: cancelUpload, access: push } },
    tags: { GET: { handler: listTags, access: pull }, HEAD: { handler: listTags, access: pull } },
    referrers: { GET: { handler: referrers, access: pull }, HEAD: { handler: referrers, access: pull } },
  };

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = req.url ?? '/';
    const qi = raw.indexOf('?');
    const path = qi < 0 ? raw : raw.slice(0, qi);
    const query = new URLSearchParams(qi < 0 ? '' : raw.slice(qi + 1));
    const method = req.method ?? 'GET';
    const head = method === 'HEAD';
    if (path === '/token') return token(req, res, query);
    if (path === '/v2/' || path === '/v2') {
      auth.check(req, undefined);
      return sendJson(res, 200, {}, head);
    }
    if (path === '/v2/_catalog' || path === '/v1/search') {
      if (method !== 'GET' && method !== 'HEAD') throw registryError('UNSUPPORTED', `${method} is not supported on ${path}`);
      auth.check(req, { type: 'registry', name: 'catalog', actions: ['*'] });
      return path === '/v1/search' ? search(req, res, query, head) : catalog(req, res, query, head);
    }
    for (const { re, kind } of ROUTES) {
      const m = re.exec(path);
      if (!m) continue;
      const name = checkName(m[1]);
      const entry = TABLE[kind][method];
      if (!entry) throw registryError('UNSUPPORTED', `${method} is not supported on ${kind}`, { headers: { Allow: Object.keys(TABLE[kind]).join(', ') } });
      auth.check(req, entry.access(name));
      if (opts.readOnly && method !== 'GET' && method !== 'HEAD') throw registryError('DENIED', 'this registry is read-only', { status: 403 });
      return entry.handler(req, res, { name, ref: m[2], query, head });
    }
    throw registryError('UNSUPPORTED', `no route for ${path.slice(0, 200)}`, { status: 404 });
  }

  async function token(req: IncomingMessage, res: ServerResponse, query: URLSearchParams): Promise<void> {
    let form: URLSearchParams | undefined;
    if (req.method === 'POST') form = new URLSearchParams((await readLimited(req, 64 << 10)).toString('utf8'));
    else req.resume();
    const r = auth.issueToken(req, query, form);
    sendJson(res, r.status, r.body, req.method === 'HEAD', { 'Cache-Control': 'no-store', ...(r.headers ?? {}) });
  }

  return (req, res) => {
    const t0 = opts.logRequests ? process.hrtime.bigint() : 0n;
    if (opts.logRequests) {
      res.once('finish', () => log.debug('request', { method: req.method, path: req.url?.split('?')[0], status: res.statusCode, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
    }
    route(req, res).catch((e) => {
      const head = req.method === 'HEAD';
      const gone = CLIENT_GONE.has((e as { code?: string }).code ?? '');
      if (res.headersSent) {
        // The body was under way: the only honest signal left is a cut connection.
        (gone ? log.debug : log.warn)('response failed', { method: req.method, path: req.url?.split('?')[0], error: (e as Error).message });
        res.destroy();
        return;
      }
      // A request body we did not read must not be taken as the next request.
      if (!req.complete) res.shouldKeepAlive = false;
      if (e instanceof RegistryError) return sendError(res, e, head, API_VERSION);
      if (isBerthError(e, 'NotFound')) return sendError(res, registryError('BLOB_UNKNOWN', e.message), head, API_VERSION);
      if (gone) {
        res.destroy();
        return;
      }
      log.error('request failed', { method: req.method, path: req.url?.split('?')[0], error: e as Error });
      const body = JSON.stringify({ errors: [{ code: 'UNKNOWN', message: 'internal server error', detail: null }] });
      res.writeHead(500, { ...API_VERSION, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(head ? undefined : body);
    });
  };
}

// ------------------------------------------------------------------ helpers

function checkReference(ref: string): void {
  if (ref.includes(':')) checkDigest(ref);
  else if (!isTag(ref)) throw registryError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(ref.slice(0, 200))}`);
}

function sendJson(res: ServerResponse, status: number, body: unknown, head: boolean, headers: Record<string, string> = {}, type = 'application/json'): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...API_VERSION, ...headers, 'Content-Type': type, 'Content-Length': Buffer.byteLength(text) });
  res.end(head ? undefined : text);
}

/** Past this, an oversized body is not even read: the connection is answered and closed. */
const DRAIN_MAX = 64 << 20;

/**
 * Reads a small body whole. A body over `max` is refused (413, SIZE_INVALID) without being kept:
 * it is read and dropped (up to DRAIN_MAX), so the client sees the answer rather than a broken pipe.
 */
async function readLimited(req: IncomingMessage, max: number): Promise<Buffer> {
  const declared = contentLength(req);
  const tooBig = () => registryError('SIZE_INVALID', `body larger than ${max} bytes`, { status: 413, detail: { limit: max } });
  if (declared !== undefined && declared > DRAIN_MAX) throw tooBig();
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > DRAIN_MAX) throw tooBig();
    if (n <= max) chunks.push(c);
  }
  if (n > max) throw tooBig();
  return Buffer.concat(chunks);
}

function contentLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw registryError('SIZE_INVALID', `bad Content-Length ${JSON.stringify(v)}`);
  return n;
}

/** A PATCH's `Content-Range: <start>-<end>` (the spec's form; `bytes ` is tolerated). */
function parseContentRange(v: string | undefined): { start?: number; end?: number } {
  if (v === undefined) return {};
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(v.trim());
  if (!m || Number(m[2]) < Number(m[1])) throw registryError('BLOB_UPLOAD_INVALID', `bad Content-Range ${JSON.stringify(v.slice(0, 100))}`, { status: 416 });
  return { start: Number(m[1]), end: Number(m[2]) };
}

/** A GET's `Range: bytes=a-b`, `bytes=a-` or `bytes=-n`, clamped to the blob; null for none. */
function parseRange(v: string | undefined, size: number): { start: number; end: number } | null | 'unsatisfiable' {
  if (!v) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(v.trim());
  if (!m || (m[1] === '' && m[2] === '')) return 'unsatisfiable';
  if (m[1] === '') {
    const n = Math.min(Number(m[2]), size);
    if (n === 0) return 'unsatisfiable';
    return { start: size - n, end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}

/** `n` and `last` pagination with the spec's `Link: <…>; rel="next"` when more remain. */
function paginate(all: string[], query: URLSearchParams, path: string): { items: string[]; link?: string } {
  const last = query.get('last');
  let items = last ? all.filter((t) => t > last) : all;
  const nRaw = query.get('n');
  if (nRaw === null || nRaw === '') return { items };
  const n = Number(nRaw);
  if (!Number.isSafeInteger(n) || n < 0) throw registryError('UNSUPPORTED', `bad page size n=${JSON.stringify(nRaw.slice(0, 20))}`, { status: 400 });
  const more = items.length > n;
  items = items.slice(0, n);
  if (!more || n === 0) return { items };
  return { items, link: `<${path}?n=${n}&last=${encodeURIComponent(items[items.length - 1])}>; rel="next"` };
}
