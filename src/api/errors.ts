import type { ServerResponse } from 'node:http';
import { BerthError, type ErrorCode } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';

/** The one place an error category becomes an HTTP status and Docker's `{"message": …}` body. */
const STATUS: Record<ErrorCode, number> = {
  NotFound: 404,
  AlreadyExists: 409,
  Conflict: 409,
  InvalidArgument: 400,
  FailedPrecondition: 409,
  Forbidden: 403,
  Unauthorized: 401,
  Unavailable: 503,
  NotImplemented: 501,
  Internal: 500,
};

export function statusOf(e: unknown): number {
  return e instanceof BerthError ? STATUS[e.code] : 500;
}

export function sendError(res: ServerResponse, e: unknown, log: Logger): void {
  const status = statusOf(e);
  const message = e instanceof Error ? e.message : String(e);
  if (status >= 500) log.error('request failed', { err: e });
  if (res.headersSent) {
    // A stream already under way: Docker's clients read an in-band error message.
    if (!res.writableEnded) res.end(JSON.stringify({ errorDetail: { message }, error: message }) + '\n');
    return;
  }
  const body = JSON.stringify({ message });
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}
