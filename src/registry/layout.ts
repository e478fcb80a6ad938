// Where everything lives inside the storage driver. One place, so gc, the server and the
// docs agree. Names and digests reaching here have been validated (names.ts); a repository
// component never starts with `_`, so `_manifests`, `_layers`, `_uploads` and `_referrers`
// can never collide with a nested repository name.
import { type Digest, digestHex } from '../common/digest.ts';

export const BLOBS = 'blobs/sha256';
export const REPOSITORIES = 'repositories';

export const layout = {
  blob: (d: Digest) => `${BLOBS}/${digestHex(d)}`,
  repository: (name: string) => `${REPOSITORIES}/${name}`,
  /** A blob's membership in a repository: an empty file. */
  layerLink: (name: string, d: Digest) => `${REPOSITORIES}/${name}/_layers/sha256/${digestHex(d)}`,
  layers: (name: string) => `${REPOSITORIES}/${name}/_layers/sha256`,
  /** A manifest's membership in a repository; the file holds its media type. */
  revision: (name: string, d: Digest) => `${REPOSITORIES}/${name}/_manifests/revisions/sha256/${digestHex(d)}`,
  revisions: (name: string) => `${REPOSITORIES}/${name}/_manifests/revisions/sha256`,
  /** A tag; the file holds the manifest's digest. */
  tag: (name: string, tag: string) => `${REPOSITORIES}/${name}/_manifests/tags/${tag}`,
  tags: (name: string) => `${REPOSITORIES}/${name}/_manifests/tags`,
  /** Manifests whose `subject` is `subject`; each file holds the referrer's descriptor as JSON. */
  referrer: (name: string, subject: Digest, d: Digest) => `${REPOSITORIES}/${name}/_referrers/sha256/${digestHex(subject)}/sha256/${digestHex(d)}`,
  referrers: (name: string, subject: Digest) => `${REPOSITORIES}/${name}/_referrers/sha256/${digestHex(subject)}/sha256`,
  uploads: (name: string) => `${REPOSITORIES}/${name}/_uploads`,
  upload: (name: string, id: string) => `${REPOSITORIES}/${name}/_uploads/${id}`,
  uploadData: (name: string, id: string) => `${REPOSITORIES}/${name}/_uploads/${id}/data`,
  uploadStarted: (name: string, id: string) => `${REPOSITORIES}/${name}/_uploads/${id}/startedat`,
  /** The HMAC key that signs bearer tokens; made once per root. */
  tokenSecret: 'auth/token-secret',
};

export const hexDigest = (hex: string): Digest => `sha256:${hex}`;
