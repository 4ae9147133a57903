/**
 * findImages over a real, schema-validated object of every supported kind: each image of containers,
 * initContainers, ephemeralContainers and image volumes, with the JSON pointer a JSONPatch replaces; pods/
 * ephemeralcontainers UPDATEs mark only new ephemeral containers for checking; shapes airlock cannot read throw.
 */
import { describe, expect, it } from 'vitest';
import { findImages } from '../src/review/images.js';
import { ALL_KINDS, ephemeralUpdate, objectOfKind } from './k8s.js';

const IMAGES = {
  containers: ['reg.example/app:1', 'reg.example/sidecar@sha256:' + 'a'.repeat(64)],
  initContainers: ['reg.example/init:2'],
  ephemeralContainers: ['reg.example/debug:3'],
  volumes: ['reg.example/data:4'],
};

const SPEC_PATH: Record<string, string> = {
  Pod: '/spec',
  CronJob: '/spec/jobTemplate/spec/template/spec',
  PodTemplate: '/template/spec',
};

/** Resolves an RFC 6901 pointer in a plain object. */
function at(obj: unknown, pointer: string): unknown {
  return pointer
    .split('/')
    .slice(1)
    .reduce<unknown>((o, k) => (o as Record<string, unknown>)[k.replace(/~1/g, '/').replace(/~0/g, '~')], obj);
}

describe('findImages', () => {
  for (const kind of ALL_KINDS) {
    it(`${kind}: every image with a pointer that resolves to it`, () => {
      const { object } = objectOfKind(kind, IMAGES);
      const found = findImages(kind, object);
      const base = SPEC_PATH[kind] ?? '/spec/template/spec';
      expect(found.map((f) => [f.field, f.image, f.pointer])).toEqual([
        ['initContainers', 'reg.example/init:2', `${base}/initContainers/0/image`],
        ['containers', 'reg.example/app:1', `${base}/containers/0/image`],
        ['containers', IMAGES.containers[1], `${base}/containers/1/image`],
        ['ephemeralContainers', 'reg.example/debug:3', `${base}/ephemeralContainers/0/image`],
        ['volumes', 'reg.example/data:4', `${base}/volumes/0/image/reference`],
      ]);
      for (const f of found) {
        expect(at(object, f.pointer)).toBe(f.image);
        expect(f.check).toBe(true);
      }
    });
  }

  it('pods/ephemeralcontainers UPDATE: all listed, only the new ephemeral container checked', () => {
    const r = ephemeralUpdate(['reg.example/app:1'], ['reg.example/debug:old'], ['reg.example/debug:new']);
    const found = findImages('Pod', r.object, r.oldObject);
    expect(found.map((f) => [f.image, f.check])).toEqual([
      ['reg.example/app:1', true],
      ['reg.example/debug:old', false],
      ['reg.example/debug:new', true],
    ]);
  });

  it('an existing ephemeral container whose image changed is checked (not trusted by name alone)', () => {
    const r = ephemeralUpdate(['reg.example/app:1'], ['reg.example/debug:old'], []);
    const obj = structuredClone(r.object) as { spec: { ephemeralContainers: { image: string }[] } };
    obj.spec.ephemeralContainers[0]!.image = 'reg.example/evil:1';
    const found = findImages('Pod', obj, r.oldObject);
    expect(found.find((f) => f.field === 'ephemeralContainers')).toMatchObject({
      image: 'reg.example/evil:1',
      check: true,
    });
  });

  it('an object without a pod spec has no images; a malformed one is refused naming the field', () => {
    expect(findImages('Deployment', { metadata: { name: 'x' } })).toEqual([]);
    expect(() => findImages('Pod', { spec: { containers: { name: 'c' } } })).toThrow(
      '/spec/containers must be an array',
    );
    expect(() => findImages('Pod', { spec: { containers: [{ name: 'c', image: 7 }] } })).toThrow(
      '/spec/containers/0/image must be a non-empty image reference',
    );
    expect(() => findImages('Pod', { spec: { containers: [{ name: 'c', image: '' }] } })).toThrow(
      '/spec/containers/0/image',
    );
    expect(() => findImages('Pod', { spec: { volumes: [{ name: 'v', image: 'x' }] } })).toThrow(
      '/spec/volumes/0/image must be an object',
    );
    expect(() => findImages('Deployment', { spec: { template: [] } })).toThrow('/spec/template must be an object');
    expect(() => findImages('Secret', {})).toThrow('kind Secret');
  });
});
