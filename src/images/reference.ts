import { type Digest, isDigest } from '../common/digest.ts';
import { invalidArgument } from '../common/errors.ts';

/**
 * Image references with Docker's normalisation: `busybox` is
 * `docker.io/library/busybox:latest`, `localhost:5000/a` keeps its registry, and
 * `name@sha256:…` pins a digest. Grammar from the distribution reference spec.
 */
export interface Reference {
  domain: string;       // registry host[:port], 'docker.io' by default
  path: string;         // repository path inside the registry, 'library/busybox'
  tag?: string;
  digest?: Digest;
}

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
const LEGACY_DOMAIN = 'index.docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const NAME_MAX = 255;

function formatError(s: string, why?: string): Error {
  return invalidArgument(why ? `invalid reference format: ${why}` : `invalid reference format`, s);
}

/** Parses and normalises a reference. A bare name gets no tag here; see withDefaultTag. */
export function parseReference(input: string): Reference {
  let s = input;
  if (s === '') throw formatError(input);
  let digest: Digest | undefined;
  const at = s.indexOf('@');
  if (at >= 0) {
    const d = s.slice(at + 1);
    if (!isDigest(d)) throw formatError(input);
    digest = d;
    s = s.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = s.lastIndexOf('/');
  const colon = s.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = s.slice(colon + 1);
    s = s.slice(0, colon);
    if (!TAG.test(tag)) throw formatError(input);
  }
  if (s.length > NAME_MAX) throw formatError(input, `repository name must not be more than ${NAME_MAX} characters`);
  let domain = DEFAULT_DOMAIN;
  let path = s;
  const slash = s.indexOf('/');
  if (slash >= 0) {
    const first = s.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = s.slice(slash + 1);
    }
  }
  if (!validDomain(domain)) throw formatError(input);
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (path !== path.toLowerCase() && path.split('/').every((c) => COMPONENT.test(c.toLowerCase()))) {
    throw formatError(input, `repository name (${path}) must be lowercase`);
  }
  if (path === '' || !path.split('/').every((c) => COMPONENT.test(c))) throw formatError(input);
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  return { domain, path, tag, digest };
}

function validDomain(d: string): boolean {
  let host = d;
  const m = /^(.*):(\d+)$/.exec(d);
  if (m) host = m[1];
  if (host.startsWith('[') && host.endsWith(']')) return true; // IPv6 literal
  return host.split('.').every((c) => DOMAIN_COMPONENT.test(c));
}

/** `busybox` → `busybox:latest`; references with a tag or digest stay as they are. */
export function withDefaultTag(r: Reference): Reference {
  return r.tag || r.digest ? r : { ...r, tag: DEFAULT_TAG };
}

/** The repository name in full: `docker.io/library/busybox`. */
export function repositoryName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** Docker's short form of a repository: `busybox`, `user/app`, `localhost:5000/app`. */
export function familiarRepository(r: Reference): string {
  if (r.domain !== DEFAULT_DOMAIN) return `${r.domain}/${r.path}`;
  return r.path.startsWith('library/') && r.path.indexOf('/', 8) < 0 ? r.path.slice(8) : r.path;
}

/** Full canonical string: `docker.io/library/busybox:latest`, `docker.io/library/busybox@sha256:…`. */
export function formatReference(r: Reference): string {
  let s = repositoryName(r);
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/** Docker's familiar string: `busybox:latest`, `localhost:5000/app@sha256:…`. */
export function familiarString(r: Reference): string {
  let s = familiarRepository(r);
  if (r.tag) s += `:${r.tag}`;
  if (r.digest) s += `@${r.digest}`;
  return s;
}

/** Parses a stored canonical ref back (always valid, so cheap). */
export function parseStoredRef(ref: string): Reference {
  return parseReference(ref);
}
