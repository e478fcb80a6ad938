import type { Duplex } from 'node:stream';
import { DEFAULT_DETACH_KEYS, EscapeMatcher, parseDetachKeys } from '../../common/detach-keys.ts';
import { Deframer, frame, StdStream } from '../../common/stdcopy.ts';
import { ExecStartError } from '../../runtime/exec.ts';
import type { ExecConfig, ExecService } from '../../services/exec.ts';
import { conflict, invalidArgument } from '../../common/errors.ts';
import { readJsonBody, type Context, type Route } from '../server.ts';

/** Docker's exec API: create, start (hijacked when attached), inspect, resize. */
export function execRoutes(svc: ExecService): Route[] {
  return [
    {
      method: 'POST', path: '/containers/{id}/exec', handler: async (ctx) => {
        const body = (await readJsonBody<ExecConfig>(ctx.req)) ?? {};
        const rec = svc.create(ctx.params.id, body);
        ctx.res.writeHead(201, { 'Content-Type': 'application/json' });
        ctx.res.end(JSON.stringify({ Id: rec.id }));
      },
    },
    { method: 'POST', path: '/exec/{id}/start', handler: (ctx) => start(svc, ctx) },
    { method: 'GET', path: '/exec/{id}/json', handler: (ctx) => svc.inspect(ctx.params.id) },
    {
      method: 'POST', path: '/exec/{id}/resize', handler: async (ctx) => {
        const h = Number(ctx.query.get('h') ?? 0);
        const w = Number(ctx.query.get('w') ?? 0);
        if (!Number.isInteger(h) || !Number.isInteger(w) || h < 0 || w < 0) throw invalidArgument('invalid resize dimensions');
        await svc.resize(ctx.params.id, h, w);
        ctx.res.writeHead(200);
        ctx.res.end();
      },
    },
  ];
}

type StartBody = { Detach?: boolean; Tty?: boolean };

async function start(svc: ExecService, ctx: Context): Promise<void> {
  const rec = svc.get(ctx.params.id);
  if (rec.started) throw conflict(`Error: Exec command ${rec.id} has already run`);
  const cfg = rec.config;
  // With `Upgrade: tcp` the body arrives on the raw socket, after the headers: read it after the hijack.
  const upgrading = Boolean(ctx.req.headers.upgrade);
  let body: StartBody = upgrading ? {} : ((await readJsonBody<StartBody>(ctx.req)) ?? {});
  let client: Duplex | undefined;
  if (upgrading) {
    client = ctx.hijack();
    const n = Number(ctx.req.headers['content-length'] ?? 0);
    if (n > 0) {
      try {
        body = JSON.parse((await readPrefix(client, n)).toString('utf8')) as StartBody;
      } catch {
        body = {};
      }
    }
  }
  const tty = body.Tty ?? Boolean(cfg.Tty);
  if (body.Detach && client) {
    const raw = client;
    await svc.start(rec.id, { tty }).catch((e: Error) => raw.write(`${e.message}\r\n`));
    raw.end();
    return;
  }
  if (body.Detach) {
    try {
      await svc.start(rec.id, { tty });
    } catch (e) {
      throw e instanceof ExecStartError ? invalidArgument(e.message, e) : e;
    }
    ctx.res.writeHead(200);
    ctx.res.end();
    return;
  }
  client ??= ctx.hijack();
  const out = client;
  const wantOut = cfg.AttachStdout !== false;
  const wantErr = cfg.AttachStderr !== false;
  let conn: Duplex | undefined;
  // With a TTY the daemon notices the detach keys too (for API clients; the docker CLI does it itself).
  const escape = tty ? new EscapeMatcher(parseDetachKeys(cfg.DetachKeys || DEFAULT_DETACH_KEYS) ?? parseDetachKeys(DEFAULT_DETACH_KEYS)!) : undefined;
  let detach!: () => void;
  const detached = new Promise<void>((r) => (detach = r));
  const connClosed = new Promise<void>((resolve) => {
    const wire = (c: Duplex) => {
      conn = c;
      const deframer = new Deframer();
      c.on('data', (chunk: Buffer) => {
        for (const { stream, payload } of deframer.push(chunk)) {
          if ((stream === StdStream.stdout && !wantOut) || (stream === StdStream.stderr && !wantErr)) continue;
          out.write(tty ? payload : frame(stream, payload));
        }
      });
      c.once('close', () => resolve());
      c.on('error', () => {});
      if (cfg.AttachStdin) {
        out.on('data', (b: Buffer) => {
          const r = escape ? escape.push(b) : { pass: b, detached: false };
          if (r.pass.length) c.write(r.pass);
          if (r.detached) detach();
        });
        // The client's stdin ended: so does the process's (the monitor's --stdin-once; not for a TTY, as in Docker).
        out.once('end', () => c.end());
      }
    };
    svc.start(rec.id, { tty, attach: wire }).catch((e: Error) => {
      // As Docker: the error text on the stream (as stdout), the exit code (126/127) for the inspect that follows.
      const text = Buffer.from(`${e.message}\r\n`);
      out.write(tty ? text : frame(StdStream.stdout, text));
      resolve();
    });
  });
  client.on('error', () => {});
  const clientGone = new Promise<void>((resolve) => client.once('close', () => resolve()));
  const how = await Promise.race([connClosed.then(() => 'ended'), clientGone.then(() => 'gone'), detached.then(() => 'detached')]);
  // The exit code is known before the stream ends, so that the CLI's inspect afterwards sees it.
  if (how === 'ended') await Promise.race([svc.exited(rec.id), clientGone]);
  conn?.destroy();
  client.end();
}

/** The first n bytes of a stream (the rest stays readable). */
async function readPrefix(s: Duplex, n: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let got = 0;
  while (got < n) {
    const chunk = s.read() as Buffer | null;
    if (chunk !== null) {
      parts.push(chunk);
      got += chunk.length;
      continue;
    }
    if (s.readableEnded || s.destroyed) break;
    await new Promise<void>((r) => {
      const done = () => {
        s.off('readable', done);
        s.off('end', done);
        s.off('close', done);
        r();
      };
      s.on('readable', done);
      s.on('end', done);
      s.on('close', done);
    });
  }
  const all = Buffer.concat(parts);
  if (all.length > n) s.unshift(all.subarray(n));
  return all.subarray(0, n);
}
