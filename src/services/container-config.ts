import { invalidArgument } from '../common/errors.ts';
import type { ContainerConfig } from '../images/oci.ts';
import type { DockerConfig } from '../metadata/containers.ts';

/**
 * Merges what `create` asked for with the image's config, as the Docker
 * daemon does: the request wins field by field, Env and Labels merge by key,
 * ExposedPorts and Volumes union, and Cmd comes from the image only when the
 * request names neither Cmd nor Entrypoint.
 */
export function mergeImageConfig(req: DockerConfig, img: ContainerConfig | undefined): DockerConfig {
  const image = img ?? {};
  const out: DockerConfig = { ...req };
  out.User = req.User || image.User || '';
  out.WorkingDir = req.WorkingDir || image.WorkingDir || '';
  out.Env = mergeEnv(image.Env ?? [], req.Env ?? []);
  out.Labels = { ...(image.Labels ?? {}), ...(req.Labels ?? {}) };
  out.ExposedPorts = union(image.ExposedPorts, req.ExposedPorts);
  out.Volumes = union(image.Volumes, req.Volumes);
  out.StopSignal = req.StopSignal || image.StopSignal || undefined;
  out.Healthcheck = req.Healthcheck ?? image.Healthcheck;
  out.OnBuild = image.OnBuild ?? null;
  const entrypointGiven = Array.isArray(req.Entrypoint) && req.Entrypoint.length > 0;
  if (entrypointGiven) {
    // `--entrypoint ""` clears the image's entrypoint without inheriting its Cmd.
    out.Entrypoint = req.Entrypoint.length === 1 && req.Entrypoint[0] === '' ? null : req.Entrypoint;
    out.Cmd = req.Cmd?.length ? req.Cmd : null;
  } else {
    out.Entrypoint = image.Entrypoint ?? null;
    out.Cmd = req.Cmd?.length ? req.Cmd : image.Cmd ?? null;
  }
  if (!out.Volumes || Object.keys(out.Volumes).length === 0) out.Volumes = null;
  if (!out.ExposedPorts || Object.keys(out.ExposedPorts).length === 0) delete out.ExposedPorts;
  return out;
}

/** The process a container runs: entrypoint then cmd. */
export function processArgs(cfg: DockerConfig): string[] {
  const args = [...(cfg.Entrypoint ?? []), ...(cfg.Cmd ?? [])];
  if (args.length === 0) throw invalidArgument('No command specified');
  return args;
}

export function mergeEnv(base: string[], over: string[]): string[] {
  const m = new Map<string, string>();
  for (const e of [...base, ...over]) {
    const i = e.indexOf('=');
    m.set(i < 0 ? e : e.slice(0, i), e);
  }
  return [...m.values()];
}

function union(a: Record<string, object> | null | undefined, b: Record<string, object> | null | undefined): Record<string, object> {
  return { ...(a ?? {}), ...(b ?? {}) };
}
