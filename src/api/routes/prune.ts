import type { Route } from '../server.ts';

/**
 * Endpoints of resources this daemon does not hold yet (networks, volumes,
 * build cache). `docker system prune` calls each; there is
 * nothing of these kinds to remove, and saying so is the true answer.
 */
export function pruneRoutes(): Route[] {
  return [
    { method: 'POST', path: '/networks/prune', handler: () => ({ NetworksDeleted: null }) },
    { method: 'POST', path: '/volumes/prune', handler: () => ({ VolumesDeleted: null, SpaceReclaimed: 0 }) },
    { method: 'POST', path: '/build/prune', handler: () => ({ CachesDeleted: null, SpaceReclaimed: 0 }) },
    { method: 'GET', path: '/volumes', handler: () => ({ Volumes: [], Warnings: null }) },
    { method: 'GET', path: '/networks', handler: () => [] },
  ];
}
