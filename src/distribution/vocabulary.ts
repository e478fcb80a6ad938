// The image-model names a registry user needs besides the client: references and media types.
// Re-exported here so the CLI's direct registry commands (`berth manifest`) depend on the
// distribution module alone, as scripts/lint-deps.ts wants.
export { type Reference, formatReference, parseReference, withDefaultTag } from '../images/reference.ts';
export { type Descriptor, type ImageConfig, type Manifest, MediaType, isIndexType } from '../images/oci.ts';
