import type { ContainerOps } from '../../services/container-ops.ts';
import { boolParam, readJsonBody, type Context, type Route } from '../server.ts';

/** `top`, `stats` and `update` of a container. */
export function containerOpsRoutes(ops: ContainerOps): Route[] {
  return [
    { method: 'GET', path: '/containers/{id}/top', handler: (ctx) => ops.top(ctx.params.id, ctx.query.get('ps_args') ?? '-ef') },
    { method: 'GET', path: '/containers/{id}/stats', handler: (ctx) => stats(ops, ctx) },
    { method: 'POST', path: '/containers/{id}/update', handler: async (ctx) => ops.update(ctx.params.id, (await readJsonBody<Record<string, any>>(ctx.req)) ?? {}) },
  ];
}

/** One JSON document per sample, newline-separated, as Docker streams them. */
async function stats(ops: ContainerOps, ctx: Context): Promise<void> {
  const stream = ctx.query.get('stream') === null ? true : boolParam(ctx.query, 'stream');
  const oneShot = boolParam(ctx.query, 'one-shot');
  const samples = ops.stats(ctx.params.id, { stream, oneShot: oneShot && !stream, signal: ctx.signal });
  // The first sample decides the answer (a missing container is a 404 before any header goes out).
  const first = await samples.next();
  ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
  if (!first.done) ctx.res.write(`${JSON.stringify(first.value)}\n`);
  for await (const s of samples) {
    if (!ctx.res.write(`${JSON.stringify(s)}\n`)) await new Promise((r) => ctx.res.once('drain', r));
  }
  ctx.res.end();
}
