// POST /build in the classic builder's stream (so the docker CLI's legacy builder works), and the
// build cache's prune. berth's own CLI may add two things Docker's API does not have: `contextdir`,
// a context directory on the daemon's machine read in place instead of an uploaded tar, and
// `progress=berth`, which adds structured step events for its live display.
import { invalidArgument } from '../../common/errors.ts';
import { shortId } from '../../common/digest.ts';
import type { BuildService } from '../../services/builds.ts';
import type { Route } from '../server.ts';
import { JsonMessageWriter } from '../streams/json-messages.ts';

const bool = (v: string | null) => v === '1' || v === 'true' || v === 'True';

function jsonParam<T>(raw: string | null, name: string, fallback: T): T {
  if (!raw) return fallback;
  try {
    return JSON.parse(raw) as T;
  } catch (e) {
    throw invalidArgument(`invalid ${name}: ${(e as Error).message}`, e);
  }
}

export function buildRoutes(builds: BuildService): Route[] {
  return [
    {
      method: 'POST', path: '/build', handler: async (ctx) => {
        const q = ctx.query;
        const quiet = bool(q.get('q'));
        const contextDir = q.get('contextdir');
        const secretsHeader = ctx.req.headers['x-berth-build-secrets'];
        const secrets = new Map<string, Buffer>();
        if (typeof secretsHeader === 'string' && secretsHeader) {
          const obj = jsonParam<Record<string, string>>(Buffer.from(secretsHeader, 'base64').toString('utf8'), 'secrets', {});
          for (const [k, v] of Object.entries(obj)) secrets.set(k, Buffer.from(v, 'base64'));
        }
        const out = new JsonMessageWriter(ctx.res);
        const events = q.get('progress') === 'berth';
        try {
          const { id } = await builds.build({
            context: contextDir ? { dir: contextDir } : { tar: ctx.req },
            dockerfile: q.get('dockerfile') ?? undefined,
            tags: q.getAll('t').filter(Boolean),
            buildArgs: jsonParam(q.get('buildargs'), 'buildargs', {}),
            labels: jsonParam(q.get('labels'), 'labels', {}),
            target: q.get('target') || undefined,
            noCache: bool(q.get('nocache')),
            pull: bool(q.get('pull')),
            platform: q.get('platform') || undefined,
            squash: bool(q.get('squash')),
            secrets,
            signal: ctx.signal,
          }, {
            stream: (text) => { if (!quiet) out.stream(text); },
            step: events ? (e) => out.write({ berth: e }) : undefined,
          });
          out.write({ aux: { ID: id } });
          if (quiet) out.stream(`${id}\n`);
          else {
            out.stream(`Successfully built ${shortId(id)}\n`);
            for (const t of q.getAll('t').filter(Boolean)) out.stream(`Successfully tagged ${t.includes(':') && !t.includes('@') && t.lastIndexOf(':') > t.lastIndexOf('/') ? t : `${t}:latest`}\n`);
          }
          out.end();
        } catch (e) {
          // Before any output the client gets an HTTP error (a Dockerfile error, say); after, an error message in the stream.
          if (!ctx.res.headersSent) throw e;
          const err = e as Error & { exitCode?: number };
          out.write({ errorDetail: { message: err.message, ...(err.exitCode !== undefined ? { code: err.exitCode } : {}) }, error: err.message });
          out.end();
        }
      },
    },
    {
      method: 'POST', path: '/build/prune', handler: (ctx) => builds.prune({
        all: bool(ctx.query.get('all')),
        filters: ctx.query.get('filters'),
        keepStorage: ctx.query.get('keep-storage') ?? ctx.query.get('reserved-space') ?? undefined,
      }),
    },
    { method: 'POST', path: '/build/cancel', handler: () => ({}) },
  ];
}
