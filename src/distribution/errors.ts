// Registry answers as BerthErrors with Docker's wording: an OCI error body
// `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"…"}]}` reads `manifest unknown: …`.
import { BerthError, ErrorCode } from '../common/errors.ts';
import { type HttpResponse, readBody } from './transport.ts';

/** An error a registry answered with: the HTTP status and the spec's code, to branch on. */
export class RegistryError extends BerthError {
  readonly status: number;
  /** The first OCI error code (`MANIFEST_UNKNOWN`, `UNAUTHORIZED`…), or undefined for a bare status. */
  readonly registryCode: string | undefined;
  constructor(code: ErrorCode, message: string, status: number, registryCode: string | undefined, cause?: unknown) {
    super(code, message, { cause });
    this.status = status;
    this.registryCode = registryCode;
  }
}

const CATEGORY: Record<string, ErrorCode> = {
  UNAUTHORIZED: ErrorCode.Unauthorized,
  DENIED: ErrorCode.Forbidden,
  BLOB_UNKNOWN: ErrorCode.NotFound,
  BLOB_UPLOAD_UNKNOWN: ErrorCode.NotFound,
  MANIFEST_UNKNOWN: ErrorCode.NotFound,
  NAME_UNKNOWN: ErrorCode.NotFound,
  MANIFEST_BLOB_UNKNOWN: ErrorCode.FailedPrecondition,
  BLOB_UPLOAD_INVALID: ErrorCode.InvalidArgument,
  DIGEST_INVALID: ErrorCode.InvalidArgument,
  MANIFEST_INVALID: ErrorCode.InvalidArgument,
  MANIFEST_UNVERIFIED: ErrorCode.InvalidArgument,
  NAME_INVALID: ErrorCode.InvalidArgument,
  SIZE_INVALID: ErrorCode.InvalidArgument,
  TAG_INVALID: ErrorCode.InvalidArgument,
  PAGINATION_NUMBER_INVALID: ErrorCode.InvalidArgument,
  RANGE_INVALID: ErrorCode.InvalidArgument,
  UNSUPPORTED: ErrorCode.NotImplemented,
  TOOMANYREQUESTS: ErrorCode.Unavailable,
};

function categoryOfStatus(status: number): ErrorCode {
  if (status === 401) return ErrorCode.Unauthorized;
  if (status === 403) return ErrorCode.Forbidden;
  if (status === 404) return ErrorCode.NotFound;
  if (status === 400 || status === 413 || status === 416) return ErrorCode.InvalidArgument;
  if (status === 405 || status === 501) return ErrorCode.NotImplemented;
  return status >= 500 || status === 429 ? ErrorCode.Unavailable : ErrorCode.Internal;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  413: 'Request Entity Too Large', 416: 'Requested Range Not Satisfiable', 429: 'Too Many Requests',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export const statusText = (status: number) => STATUS_TEXT[status] ?? 'Unknown';

/** `MANIFEST_UNKNOWN` → `manifest unknown`, as distribution's errcode prints a code. */
export const codeText = (code: string) => code.toLowerCase().replace(/_/g, ' ');

/**
 * Turns a failed response into a RegistryError, reading (at most 64 KiB of) its body.
 * Only the registry's own words go into the message: never a header we sent.
 */
export async function responseError(res: HttpResponse, what?: string): Promise<RegistryError> {
  let errors: { code?: unknown; message?: unknown }[] = [];
  if (res.headers['content-length'] !== '0') {
    try {
      const body = await readBody(res.body, 64 << 10);
      const parsed = JSON.parse(body.toString('utf8')) as { errors?: unknown; details?: unknown };
      if (Array.isArray(parsed.errors)) errors = parsed.errors as typeof errors;
    } catch {
      // Not an OCI error body: the status speaks alone.
    }
  } else {
    res.body.resume();
  }
  const known = errors.filter((e) => typeof e?.code === 'string');
  if (known.length === 0) {
    const text = res.status === 401 ? 'unauthorized: authentication required' : `unexpected status from ${what ?? 'registry'}: ${res.status} ${statusText(res.status)}`;
    return new RegistryError(categoryOfStatus(res.status), text, res.status, undefined);
  }
  const lines = known.map((e) => {
    const msg = typeof e.message === 'string' && e.message ? e.message : codeText(e.code as string);
    return `${codeText(e.code as string)}: ${msg}`;
  });
  const first = known[0].code as string;
  const message = lines.length === 1 ? lines[0] : `errors:\n${lines.join('\n')}`;
  return new RegistryError(CATEGORY[first] ?? categoryOfStatus(res.status), message, res.status, first);
}

/** A registry error made here (no response body): `unauthorized: authentication required` and friends. */
export function registryError(registryCode: string, message: string, status: number): RegistryError {
  return new RegistryError(CATEGORY[registryCode] ?? categoryOfStatus(status), `${codeText(registryCode)}: ${message}`, status, registryCode);
}
