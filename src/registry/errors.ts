// The OCI Distribution error codes and the one place they become an HTTP status and a
// `{"errors":[{"code","message","detail"}]}` body.
import type { ServerResponse } from 'node:http';

export const ErrorCodes = {
  BLOB_UNKNOWN: { status: 404, message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: { status: 400, message: 'manifest references a manifest or blob unknown to registry' },
  MANIFEST_INVALID: { status: 400, message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, message: 'manifest unknown' },
  NAME_INVALID: { status: 400, message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, message: 'authentication required' },
  DENIED: { status: 403, message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, message: 'too many requests' },
} as const;
export type RegistryErrorCode = keyof typeof ErrorCodes;

export class RegistryError extends Error {
  readonly code: RegistryErrorCode;
  readonly status: number;
  readonly detail: unknown;
  /** Extra response headers: the `WWW-Authenticate` challenge of a 401, a 416's `Range`. */
  readonly headers: Record<string, string>;
  constructor(code: RegistryErrorCode, message?: string, opts: { status?: number; detail?: unknown; cause?: unknown; headers?: Record<string, string> } = {}) {
    super(message ?? ErrorCodes[code].message, { cause: opts.cause });
    this.code = code;
    this.status = opts.status ?? ErrorCodes[code].status;
    this.detail = opts.detail;
    this.headers = opts.headers ?? {};
  }
}

export const registryError = (code: RegistryErrorCode, message?: string, opts?: { status?: number; detail?: unknown; cause?: unknown; headers?: Record<string, string> }) =>
  new RegistryError(code, message, opts);

/** Writes the OCI error body. HEAD answers carry no body, as HTTP requires. */
export function sendError(res: ServerResponse, e: RegistryError, head: boolean, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ errors: [{ code: e.code, message: e.message, detail: e.detail ?? null }] });
  res.writeHead(e.status, { ...headers, ...e.headers, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(head ? undefined : body);
}
