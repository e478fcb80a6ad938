/**
 * Errors are categories with stable codes. Code branches on `code`, never on
 * message text. The API maps each category to an HTTP status (api/errors.ts),
 * the CLI maps it to an exit code.
 */
export const ErrorCode = {
  NotFound: 'NotFound',
  AlreadyExists: 'AlreadyExists',
  Conflict: 'Conflict',
  InvalidArgument: 'InvalidArgument',
  FailedPrecondition: 'FailedPrecondition',
  /** Allowed in general, refused for this object (Docker's 403: a predefined network, a network in use). */
  Forbidden: 'Forbidden',
  Unauthorized: 'Unauthorized',
  Unavailable: 'Unavailable',
  NotImplemented: 'NotImplemented',
  Internal: 'Internal',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class BerthError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `BerthError(${code})`;
  }
}

export const notFound = (msg: string, cause?: unknown) => new BerthError(ErrorCode.NotFound, msg, { cause });
export const alreadyExists = (msg: string, cause?: unknown) => new BerthError(ErrorCode.AlreadyExists, msg, { cause });
export const conflict = (msg: string, cause?: unknown) => new BerthError(ErrorCode.Conflict, msg, { cause });
export const invalidArgument = (msg: string, cause?: unknown) => new BerthError(ErrorCode.InvalidArgument, msg, { cause });
export const failedPrecondition = (msg: string, cause?: unknown) => new BerthError(ErrorCode.FailedPrecondition, msg, { cause });
export const forbidden = (msg: string, cause?: unknown) => new BerthError(ErrorCode.Forbidden, msg, { cause });
export const unavailable = (msg: string, cause?: unknown) => new BerthError(ErrorCode.Unavailable, msg, { cause });
export const notImplemented = (msg: string, cause?: unknown) => new BerthError(ErrorCode.NotImplemented, msg, { cause });

export function isBerthError(e: unknown, code?: ErrorCode): e is BerthError {
  return e instanceof BerthError && (code === undefined || e.code === code);
}

/** The code of an error from Node's fs and net layers (ENOENT, EEXIST…), if any. */
export function errno(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string' ? e.code : undefined;
}
