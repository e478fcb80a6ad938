import { invalidArgument } from '../../common/errors.ts';
import type { VolumeService } from '../../services/volumes.ts';
import { boolParam, readJsonBody, sendJson, type Route } from '../server.ts';

/** Docker's /volumes endpoints. */
export function volumeRoutes(svc: VolumeService): Route[] {
  return [
    { method: 'GET', path: '/volumes', handler: (ctx) => svc.list(ctx.query.get('filters')) },
    {
      method: 'POST', path: '/volumes/create', handler: async (ctx) => {
        const body = (await readJsonBody<Record<string, unknown>>(ctx.req)) ?? {};
        for (const k of ['Name', 'Driver'] as const) {
          if (body[k] !== undefined && typeof body[k] !== 'string') throw invalidArgument(`invalid ${k}: must be a string`);
        }
        const v = await svc.create(body as Parameters<VolumeService['create']>[0]);
        sendJson(ctx.res, 201, svc.toJson(v));
      },
    },
    { method: 'POST', path: '/volumes/prune', handler: (ctx) => svc.prune(ctx.query.get('filters')) },
    { method: 'GET', path: '/volumes/{name}', handler: (ctx) => svc.toJson(svc.get(ctx.params.name)) },
    { method: 'DELETE', path: '/volumes/{name}', handler: async (ctx) => void (await svc.remove(ctx.params.name, boolParam(ctx.query, 'force'))) },
  ];
}
