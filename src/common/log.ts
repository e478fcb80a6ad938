/**
 * One structured logger: JSON lines on stderr. Children bind fields such as the
 * module and an id. Secrets never go in: callers pass references, not tokens.
 */
export const LogLevel = { debug: 10, info: 20, warn: 30, error: 40 } as const;
export type LogLevel = keyof typeof LogLevel;

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  level: LogLevel = 'info',
  bound: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stderr.write(line),
): Logger {
  const min = LogLevel[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (LogLevel[lvl] < min) return;
    const rec: Record<string, unknown> = { time: new Date().toISOString(), level: lvl, msg, ...bound, ...fields };
    for (const [k, v] of Object.entries(rec)) if (v instanceof Error) rec[k] = errorFields(v);
    write(JSON.stringify(rec) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, { ...bound, ...fields }, write),
  };
}

function errorFields(e: Error): Record<string, unknown> {
  const out: Record<string, unknown> = { message: e.message, name: e.name };
  if (e.stack) out.stack = e.stack;
  if (e.cause instanceof Error) out.cause = errorFields(e.cause);
  return out;
}

export const silentLogger: Logger = createLogger('error', {}, () => {});
