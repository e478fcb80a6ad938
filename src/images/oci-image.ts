// An image made here (commit, import, build) as the store keeps it: its config blob and a
// canonical OCI manifest over its layers. The image ID is the config's digest.
import type { Digest } from '../common/digest.ts';
import type { ContentWriter } from '../content/store.ts';
import { type ImageConfig, MediaType } from './oci.ts';
import type { LayerRecord, NewImage } from './store.ts';

/** A canonical OCI manifest: fixed key order, so the same image always gets the same manifest digest. */
export function manifestBytes(config: { digest: Digest; size: number }, layers: { blob: Digest; size: number; mediaType: string }[], configMediaType: string): Buffer {
  const m = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: configMediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.blob, size: l.size })),
  };
  return Buffer.from(JSON.stringify(m));
}

/** Docker's layer types are spelled the OCI way in an OCI manifest (the same bytes). */
export function ociLayer(l: LayerRecord): LayerRecord {
  if (l.mediaType === MediaType.DockerLayerGzip) return { ...l, mediaType: MediaType.OciLayerGzip };
  if (l.mediaType === MediaType.DockerLayer) return { ...l, mediaType: MediaType.OciLayer };
  return l;
}

/** Writes the config and its manifest; returns the record to store, and the manifest's size (for an index). */
export async function writeOciImage(
  content: ContentWriter, config: ImageConfig, layers: LayerRecord[], hold: (d: Digest) => void, parent?: string,
): Promise<{ image: NewImage; manifestSize: number }> {
  const cfg = await content.writeBytes(Buffer.from(JSON.stringify(config)), undefined, hold);
  const manifest = await content.writeBytes(manifestBytes(cfg, layers, MediaType.OciConfig), undefined, hold);
  return {
    image: {
      id: cfg.digest, manifest: manifest.digest, manifestMediaType: MediaType.OciManifest, configMediaType: MediaType.OciConfig,
      config, layers, ...(parent ? { parent } : {}),
    },
    manifestSize: manifest.size,
  };
}
