import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { invalidArgument } from '../../common/errors.ts';
import type { ContainerConfig } from '../../images/oci.ts';
import type { ContainerFsService, PathStat } from '../../services/container-fs.ts';
import { boolParam, readJsonBody, type Context, type Route } from '../server.ts';

const STAT_HEADER = 'X-Docker-Container-Path-Stat';

const statHeader = (s: PathStat) => Buffer.from(JSON.stringify(s)).toString('base64');

async function sendTar(ctx: Context, source: AsyncGenerator<Buffer>, headers: Record<string, string> = {}): Promise<void> {
  ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar', ...headers });
  try {
    await pipeline(Readable.from(source), ctx.res, { signal: ctx.signal });
  } catch (e) {
    // Headers are out: all that is left is to cut the stream, so the client sees a truncated tar.
    await source.return(undefined).catch(() => {});
    ctx.res.destroy(e as Error);
  }
}

/** diff, export, commit and the archive API (docker cp). */
export function containerFsRoutes(fs: ContainerFsService): Route[] {
  return [
    { method: 'GET', path: '/containers/{id}/changes', handler: (ctx) => fs.changes(ctx.params.id) },
    { method: 'GET', path: '/containers/{id}/export', handler: (ctx) => sendTar(ctx, fs.export(ctx.params.id, ctx.signal)) },
    {
      method: 'HEAD', path: '/containers/{id}/archive', handler: async (ctx) => {
        const stat = await fs.statPath(ctx.params.id, ctx.query.get('path') ?? '');
        ctx.res.writeHead(200, { [STAT_HEADER]: statHeader(stat), 'Content-Type': 'application/json' });
        ctx.res.end();
      },
    },
    {
      method: 'GET', path: '/containers/{id}/archive', handler: async (ctx) => {
        const { stat, tar } = await fs.getArchive(ctx.params.id, ctx.query.get('path') ?? '', ctx.signal);
        await sendTar(ctx, tar, { [STAT_HEADER]: statHeader(stat) });
      },
    },
    {
      method: 'PUT', path: '/containers/{id}/archive', handler: async (ctx) => {
        await fs.putArchive(ctx.params.id, ctx.query.get('path') ?? '', ctx.req, {
          noOverwriteDirNonDir: boolParam(ctx.query, 'noOverwriteDirNonDir'),
          copyUIDGID: boolParam(ctx.query, 'copyUIDGID'),
          signal: ctx.signal,
        });
        ctx.res.writeHead(200);
        ctx.res.end();
      },
    },
    {
      method: 'POST', path: '/commit', handler: async (ctx) => {
        const q = ctx.query;
        const container = q.get('container');
        if (!container) throw invalidArgument('container is required');
        const body = await readJsonBody<ContainerConfig | null>(ctx.req);
        const id = await fs.commit(container, {
          repo: q.get('repo') || undefined, tag: q.get('tag') || undefined, comment: q.get('comment') || undefined,
          author: q.get('author') || undefined, pause: q.get('pause') === null || q.get('pause') === '' ? true : boolParam(q, 'pause'),
          changes: q.getAll('changes').flatMap((c) => c.split('\n')).filter((c) => c.trim()),
          config: body && typeof body === 'object' ? body : undefined,
        });
        ctx.res.writeHead(201, { 'Content-Type': 'application/json' });
        ctx.res.end(JSON.stringify({ Id: id }));
      },
    },
  ];
}
