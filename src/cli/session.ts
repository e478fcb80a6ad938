import type { Socket } from 'node:net';
import { EscapeMatcher, parseDetachKeys } from '../common/detach-keys.ts';
import { Deframer } from '../common/stdcopy.ts';
import { CliError } from './command.ts';

/**
 * A hijacked attach or exec stream wired to this terminal, as the docker CLI
 * does it: output raw for a TTY (demultiplexed otherwise), stdin forwarded,
 * with a TTY the terminal in raw mode, the size sent at start and on SIGWINCH,
 * and the detach keys (default ctrl-p,ctrl-q) noticed here, leaving the
 * container running.
 */
export interface SessionOptions {
  stream: Socket;
  tty: boolean;
  /** Forward our stdin. */
  stdin: boolean;
  /** docker's --detach-keys; default ctrl-p,ctrl-q. Only with a TTY, as in docker. */
  detachKeys?: string;
  /** Sends a resize (rows, cols) to the daemon. */
  resize?: (rows: number, cols: number) => Promise<void>;
}

export interface Session {
  /** Resolves when the stream ended ('ended') or the user detached ('detached'). */
  done: Promise<'ended' | 'detached'>;
  /** Sends the terminal's size now (after start) and on every SIGWINCH. */
  startResizing(): void;
  /** Restores the terminal and stops forwarding. Idempotent. */
  restore(): void;
}

export function openSession(o: SessionOptions): Session {
  const stdin = process.stdin;
  const raw = o.tty && o.stdin && stdin.isTTY;
  let restored = false;
  let onWinch: (() => void) | undefined;
  let finish!: (how: 'ended' | 'detached') => void;
  const done = new Promise<'ended' | 'detached'>((r) => (finish = r));

  const deframer = new Deframer();
  o.stream.on('data', (chunk: Buffer) => {
    if (o.tty) return void process.stdout.write(chunk);
    for (const { stream, payload } of deframer.push(chunk)) (stream === 2 ? process.stderr : process.stdout).write(payload);
  });
  o.stream.once('end', () => finish('ended'));
  o.stream.once('close', () => finish('ended'));
  o.stream.once('error', () => finish('ended'));

  const onData = (b: Buffer) => {
    const out = escape ? escape.push(b) : { pass: b, detached: false };
    if (out.pass.length) o.stream.write(out.pass);
    if (out.detached) finish('detached');
  };
  const onEnd = () => {
    // Half-close: the daemon closes the container's stdin (StdinOnce) and keeps sending output.
    if (!o.stream.destroyed) o.stream.end();
  };
  const keys = parseDetachKeys(o.detachKeys || 'ctrl-p,ctrl-q');
  if (!keys) throw new CliError(`Invalid detach keys (${o.detachKeys}) provided`);
  const escape = o.tty && o.stdin ? new EscapeMatcher(keys) : undefined;
  if (o.stdin) {
    if (raw) stdin.setRawMode(true);
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.resume();
  }
  const restore = () => {
    if (restored) return;
    restored = true;
    if (o.stdin) {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      if (raw) stdin.setRawMode(false);
      stdin.pause();
    }
    if (onWinch) process.off('SIGWINCH', onWinch);
  };
  done.then(restore, restore);
  return {
    done,
    restore,
    startResizing() {
      if (!o.tty || !o.resize || !process.stdout.isTTY) return;
      const send = () => {
        const { rows, columns } = process.stdout;
        if (rows && columns) o.resize!(rows, columns).catch(() => {});
      };
      send();
      onWinch = send;
      process.on('SIGWINCH', onWinch);
    },
  };
}
