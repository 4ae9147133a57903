import { describe, expect, it } from 'vitest';
import { MEDIA_TYPES, OciError, parseImageIndex, parseImageManifest } from '../src/index.js';

const digest = `sha256:${'a'.repeat(64)}`;
const desc = (mediaType: string) => ({ mediaType, digest, size: 2 });
const bytes = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));
const manifest = {
  schemaVersion: 2,
  mediaType: MEDIA_TYPES.ociManifest,
  config: desc(MEDIA_TYPES.ociConfig),
  layers: [desc(MEDIA_TYPES.ociLayerGzip)],
};
const index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [desc(MEDIA_TYPES.ociManifest)] };

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(OciError);
    expect((err as OciError).code).toBe('OCI_INVALID_MANIFEST');
    return (err as Error).message;
  }
  throw new Error('accepted');
}

describe('parseImageManifest / parseImageIndex', () => {
  it('accept well-formed documents, with or without a mediaType', () => {
    expect(parseImageManifest(bytes(manifest), 'm').layers).toHaveLength(1);
    expect(parseImageManifest(bytes({ ...manifest, mediaType: undefined }), 'm').config.digest).toBe(digest);
    expect(parseImageIndex(bytes(index), 'i').manifests).toHaveLength(1);
    expect(parseImageIndex(bytes({ ...index, mediaType: MEDIA_TYPES.dockerManifestList }), 'i').manifests).toHaveLength(
      1,
    );
  });

  it.each([
    ['not JSON', () => parseImageManifest(bytes('{'), 'm'), 'm: not JSON'],
    ['JSON null', () => parseImageManifest(bytes('null'), 'm'), 'm: schemaVersion must be 2'],
    [
      'schemaVersion 1',
      () => parseImageIndex(bytes({ ...index, schemaVersion: 1 }), 'i'),
      'i: schemaVersion must be 2',
    ],
    ['an index given as a manifest', () => parseImageManifest(bytes(index), 'm'), 'm: not an image manifest'],
    ['a manifest given as an index', () => parseImageIndex(bytes(manifest), 'i'), 'i: not an image index'],
    ['a non-string mediaType', () => parseImageManifest(bytes({ ...manifest, mediaType: 7 }), 'm'), '(mediaType 7)'],
    [
      'layers not an array',
      () => parseImageManifest(bytes({ ...manifest, layers: {} }), 'm'),
      'layers must be an array',
    ],
    [
      'manifests not an array',
      () => parseImageIndex(bytes({ ...index, manifests: 1 }), 'i'),
      'manifests must be an array',
    ],
    ['a bad layer descriptor', () => parseImageManifest(bytes({ ...manifest, layers: [{}] }), 'm'), 'm layers[0]'],
  ])('refuse %s', (_name, fn, message) => {
    expect(rejection(fn)).toContain(message);
  });
});
