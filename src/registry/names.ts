// The grammar of the OCI Distribution Spec for repository names and tags.
import { isDigest, type Digest } from '../common/digest.ts';
import { registryError } from './errors.ts';

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** Docker's limit on a whole repository name. */
const NAME_MAX = 255;

export function isRepositoryName(name: string): boolean {
  return name.length <= NAME_MAX && NAME_RE.test(name);
}

export function checkName(name: string): string {
  if (!isRepositoryName(name)) throw registryError('NAME_INVALID', `invalid repository name ${JSON.stringify(name.slice(0, 300))}`, { detail: { name: name.slice(0, 300) } });
  return name;
}

export function isTag(ref: string): boolean {
  return TAG_RE.test(ref);
}

/** A digest in a URL or a query: DIGEST_INVALID when malformed. Only sha256 is stored. */
export function checkDigest(s: string | null | undefined): Digest {
  if (!s || !isDigest(s) || !s.startsWith('sha256:')) throw registryError('DIGEST_INVALID', `invalid digest ${JSON.stringify(String(s).slice(0, 200))}`);
  return s;
}
