// The contract between the registry client (`client.ts`, `auth.ts`, `credentials.ts`, `resolve.ts`)
// and its users: berthd's pull and push (services), `berth manifest …` (CLI) and the builder's --push.
// The client speaks the OCI Distribution Spec over HTTP(S); it knows nothing of the local store.
import type { Readable } from 'node:stream';
import type { Digest } from '../common/digest.ts';
import type { Descriptor } from '../images/oci.ts';
import type { Reference } from '../images/reference.ts';

/** Username and password (or identity token) for one registry, as `~/.docker/config.json` holds them. */
export interface Credentials {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token from `login` (docker's `identitytoken`). */
  identityToken?: string;
  /** A bearer token given directly (docker's `registrytoken`). */
  registryToken?: string;
}

/** How berthd reaches registries: from the daemon config (`--insecure-registry`, `--registry-mirror`). */
export interface RegistryOptions {
  /** Hosts (`host:port`) or CIDRs that may use plain HTTP or unverified TLS. localhost and 127.0.0.0/8 always may. */
  insecure: string[];
  /** Mirrors tried first for docker.io, as Docker does. */
  mirrors: string[];
  /** Credentials for a registry host, looked up per request; never logged. */
  credentials: (host: string) => Credentials | undefined | Promise<Credentials | undefined>;
  /** Aborts every request of an operation. */
  signal?: AbortSignal;
}

/** Where a reference lives: docker.io maps to registry-1.docker.io, with library/ for official images. */
export interface Endpoint {
  /** `https://host[:port]` or `http://…` for an insecure registry. */
  url: string;
  /** The host as the user and config.json name it (`docker.io` → `https://index.docker.io/v1/` key). */
  host: string;
  /** The repository path on that registry, e.g. `library/busybox`. */
  repository: string;
  insecure: boolean;
  mirror: boolean;
}

/** A manifest or index as fetched: its exact bytes (digests are over bytes), media type and digest. */
export interface FetchedManifest {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

/** One registry repository, authenticated for the actions asked (pull, push). */
export interface Repository {
  readonly endpoint: Endpoint;
  /** GET a manifest by tag or digest; checks the digest when asked by digest. */
  getManifest(tagOrDigest: string): Promise<FetchedManifest>;
  /** HEAD a manifest: its descriptor, or undefined when absent. */
  headManifest(tagOrDigest: string): Promise<Descriptor | undefined>;
  putManifest(tagOrDigest: string, bytes: Buffer, mediaType: string): Promise<Digest>;
  /** True when the registry has the blob. */
  hasBlob(digest: Digest): Promise<boolean>;
  /**
   * Streams a blob from `offset` (a Range request, to resume). The stream is the raw bytes;
   * the caller checks the digest over everything it read. `size` is the whole blob's size,
   * not what remains after `offset`.
   */
  getBlob(digest: Digest, offset?: number): Promise<{ stream: Readable; size: number }>;
  /** Tries a cross-repository mount; false when the registry answered with an upload instead. */
  mountBlob(digest: Digest, fromRepository: string): Promise<boolean>;
  /** Uploads a blob (monolithic, or chunked when `chunkSize` is set); resolves when committed. */
  pushBlob(desc: Descriptor, open: () => Readable, opts?: { chunkSize?: number; onProgress?: (sent: number) => void }): Promise<void>;
  listTags(): Promise<string[]>;
}

export interface RegistryClient {
  resolve(ref: Reference): Endpoint[];
  /** A repository handle, authenticated on first use for the scopes asked (pull, push). */
  repository(ref: Reference, actions: ('pull' | 'push')[]): Repository;
  /** Checks credentials against a registry, as `POST /auth` does: returns Docker's status text and maybe an identity token. */
  login(host: string, creds: Credentials): Promise<{ status: string; identityToken?: string }>;
  search(host: string, term: string, limit: number): Promise<unknown[]>;
}
