import { invalidArgument } from '../../common/errors.ts';
import type { NetworkService } from '../../services/networks.ts';
import { readJsonBody, sendJson, type Route } from '../server.ts';

/** Docker's /networks endpoints. */
export function networkRoutes(svc: NetworkService): Route[] {
  return [
    { method: 'GET', path: '/networks', handler: (ctx) => svc.list(ctx.query.get('filters')).map((n) => svc.inspect(n)) },
    {
      method: 'POST', path: '/networks/create', handler: async (ctx) => {
        const body = (await readJsonBody<Record<string, any>>(ctx.req)) ?? {};
        if (typeof body.Name !== 'string') throw invalidArgument('invalid Name: must be a string');
        sendJson(ctx.res, 201, await svc.create(body));
      },
    },
    { method: 'POST', path: '/networks/prune', handler: (ctx) => svc.prune(ctx.query.get('filters')) },
    { method: 'GET', path: '/networks/{id}', handler: (ctx) => svc.inspect(svc.find(ctx.params.id)) },
    {
      method: 'DELETE', path: '/networks/{id}', handler: async (ctx) => void (await svc.remove(ctx.params.id)),
    },
    {
      method: 'POST', path: '/networks/{id}/connect', handler: async (ctx) => {
        const body = (await readJsonBody<{ Container?: string; EndpointConfig?: Parameters<NetworkService['connect']>[2] }>(ctx.req)) ?? {};
        if (!body.Container) throw invalidArgument('Container is required');
        await svc.connect(ctx.params.id, body.Container, body.EndpointConfig ?? {});
      },
    },
    {
      method: 'POST', path: '/networks/{id}/disconnect', handler: async (ctx) => {
        const body = (await readJsonBody<{ Container?: string; Force?: boolean }>(ctx.req)) ?? {};
        if (!body.Container) throw invalidArgument('Container is required');
        await svc.disconnect(ctx.params.id, body.Container, Boolean(body.Force));
      },
    },
  ];
}
