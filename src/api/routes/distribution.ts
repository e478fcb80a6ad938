import { invalidArgument } from '../../common/errors.ts';
import { credentialsFromAuthConfig, decodeRegistryAuth, hostnameOf } from '../../distribution/credentials.ts';
import type { RegistryClientFactory } from '../../distribution/client.ts';
import { boolFilter, parseFilters } from '../../services/filters.ts';
import { readJsonBody, type Route } from '../server.ts';

const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const SEARCH_LIMIT_DEFAULT = 25;

interface SearchResult {
  star_count: number;
  is_official: boolean;
  name: string;
  is_automated: boolean;
  description: string;
}

/** Docker's registry endpoints of the Engine API: `POST /auth` (login) and `GET /images/search`. */
export function distributionRoutes(deps: { registries: RegistryClientFactory }): Route[] {
  return [
    {
      method: 'POST', path: '/auth', handler: async (ctx) => {
        const body = await readJsonBody<Record<string, unknown>>(ctx.req);
        const creds = credentialsFromAuthConfig(body ?? {});
        const server = creds?.serverAddress ?? '';
        const host = server ? hostnameOf(server) : 'docker.io';
        if (!creds || (!creds.username && !creds.identityToken && !creds.registryToken)) {
          throw invalidArgument('Error: Username is required');
        }
        delete creds.serverAddress;
        const r = await deps.registries(creds, ctx.signal).login(DOCKER_HUB_HOSTS.has(host) ? 'docker.io' : host, creds);
        return { Status: r.status, IdentityToken: r.identityToken ?? '' };
      },
    },
    {
      method: 'GET', path: '/images/search', handler: async (ctx) => {
        const term = ctx.query.get('term') ?? '';
        const { host, query } = splitSearchTerm(term);
        const limitRaw = ctx.query.get('limit');
        const limit = limitRaw ? Number(limitRaw) : SEARCH_LIMIT_DEFAULT;
        if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw invalidArgument(`limit ${limitRaw} is outside the range of [1, 100]`);
        const filters = parseFilters(ctx.query.get('filters'), ['is-automated', 'is-official', 'stars']);
        const official = boolFilter(filters, 'is-official');
        const automated = boolFilter(filters, 'is-automated');
        const starsRaw = filters.get('stars')?.at(-1);
        const stars = starsRaw === undefined ? 0 : Number(starsRaw);
        if (!Number.isInteger(stars)) throw invalidArgument(`invalid filter 'stars=${starsRaw}'`);
        const creds = decodeRegistryAuth(headerOf(ctx.req.headers['x-registry-auth']));
        const raw = await deps.registries(creds, ctx.signal).search(host, query, limit);
        const out: SearchResult[] = [];
        for (const r of raw) {
          const o = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
          const item: SearchResult = {
            star_count: typeof o.star_count === 'number' ? o.star_count : 0,
            is_official: o.is_official === true,
            name: typeof o.name === 'string' ? o.name : '',
            is_automated: o.is_automated === true,
            description: typeof o.description === 'string' ? o.description : '',
          };
          if (!item.name) continue;
          if (official !== undefined && item.is_official !== official) continue;
          if (automated !== undefined && item.is_automated !== automated) continue;
          if (item.star_count < stars) continue;
          out.push(item);
        }
        return out.slice(0, limit);
      },
    },
  ];
}

const headerOf = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/**
 * `127.0.0.1:5000/foo` → the registry and the query. berth has no default index: a term that
 * names no registry (or names Docker Hub) is refused rather than sent off to docker.io.
 */
export function splitSearchTerm(term: string): { host: string; query: string } {
  if (!term.trim()) throw invalidArgument('a search term is required: REGISTRY/TERM, e.g. 127.0.0.1:5000/busybox');
  const slash = term.indexOf('/');
  const first = slash >= 0 ? term.slice(0, slash) : term;
  // As docker splits a search term: a first component before a slash names a registry when it
  // looks like a host; berth also takes a bare `host:port` as "everything there".
  const namesHost = slash >= 0 ? first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('[') : first.includes(':');
  if (!namesHost || DOCKER_HUB_HOSTS.has(first.toLowerCase())) {
    throw invalidArgument(`berth has no default search index: name the registry to search in the term, e.g. 127.0.0.1:5000/${slash >= 0 ? term.slice(slash + 1) : term}`);
  }
  return { host: first, query: slash >= 0 ? term.slice(slash + 1) : '' };
}
