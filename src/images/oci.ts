import { arch as hostArch } from 'node:os';
import { type Digest, sha256 } from '../common/digest.ts';
import { invalidArgument } from '../common/errors.ts';

/** OCI image spec and Docker schema2 media types. */
export const MediaType = {
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  annotations?: Record<string, string>;
  platform?: Platform;
  artifactType?: string;
}

export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Index {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
}

export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

/** The runtime part of an image config, Docker's field names. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  Shell?: string[];
  ArgsEscaped?: boolean;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
  // Docker-only fields kept when present
  docker_version?: string;
  comment?: string;
  container?: string;
  container_config?: ContainerConfig;
  [extra: string]: unknown;
}

export const isIndexType = (t: string | undefined) => t === MediaType.OciIndex || t === MediaType.DockerManifestList;
export const isManifestType = (t: string | undefined) => t === MediaType.OciManifest || t === MediaType.DockerManifest;
export const isGzipLayer = (t: string) => t === MediaType.OciLayerGzip || t === MediaType.DockerLayerGzip;
export const isZstdLayer = (t: string) => t === MediaType.OciLayerZstd;

/** chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

const GO_ARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export function hostPlatform(): Platform {
  return { os: 'linux', architecture: GO_ARCH[hostArch()] ?? hostArch() };
}

/** `linux/arm64/v8`, `linux/amd64`, `arm64` → a normalised platform. */
export function parsePlatform(s: string): Platform {
  const parts = s.toLowerCase().split('/');
  if (parts.length === 0 || parts.length > 3 || parts.some((p) => p === '')) {
    throw invalidArgument(`"${s}": unknown operating system or architecture: invalid argument`);
  }
  let os = 'linux';
  let rest = parts;
  if (parts[0] === 'linux' || parts[0] === 'windows' || parts[0] === 'darwin') {
    os = parts[0];
    rest = parts.slice(1);
  }
  if (rest.length === 0) return { os, architecture: hostPlatform().architecture };
  return normalizePlatform({ os, architecture: rest[0], variant: rest[1] });
}

export function normalizePlatform(p: Platform): Platform {
  let { architecture, variant } = p;
  switch (architecture) {
    case 'x86_64': case 'x86-64': architecture = 'amd64'; break;
    case 'aarch64': architecture = 'arm64'; break;
    case 'armhf': architecture = 'arm'; variant ??= 'v7'; break;
    case 'armel': architecture = 'arm'; variant ??= 'v6'; break;
    case 'i386': architecture = '386'; break;
  }
  if (architecture === 'arm64' && variant === 'v8') variant = undefined;
  if (architecture === 'amd64' && variant === 'v1') variant = undefined;
  const out: Platform = { os: p.os || 'linux', architecture };
  if (variant) out.variant = variant;
  return out;
}

export function formatPlatform(p: Platform): string {
  const n = normalizePlatform(p);
  return [n.os, n.architecture, n.variant].filter(Boolean).join('/');
}

/** Whether an image of platform `have` satisfies a request for `want`. */
export function platformMatches(want: Platform, have: Platform): boolean {
  const w = normalizePlatform(want);
  const h = normalizePlatform(have);
  if (w.os !== h.os || w.architecture !== h.architecture) return false;
  return !w.variant || !h.variant || w.variant === h.variant;
}
