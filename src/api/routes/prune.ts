import type { Route } from '../server.ts';

/**
 * Endpoints of resources this daemon does not hold yet (the build cache).
 * `docker system prune` calls each; there is nothing of these kinds to
 * remove, and saying so is the true answer.
 */
export function pruneRoutes(): Route[] {
  return [
    { method: 'POST', path: '/build/prune', handler: () => ({ CachesDeleted: null, SpaceReclaimed: 0 }) },
  ];
}
