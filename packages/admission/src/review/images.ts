import { AdmissionError } from '../errors.js';

/** Where an image sits in a pod spec. */
export type ImageField = 'containers' | 'initContainers' | 'ephemeralContainers' | 'volumes';

/** One image in an admitted object, with the RFC 6901 pointer of its string (for a JSONPatch replace). */
export interface FoundImage {
  image: string;
  /** JSON pointer to the image string, e.g. `/spec/template/spec/containers/0/image`. */
  pointer: string;
  field: ImageField;
  /** Container or volume name. */
  name: string;
  /**
   * false for an ephemeral container that already existed in oldObject (an UPDATE of pods/ephemeralcontainers):
   * listed, but the API server keeps existing ephemeral containers immutable, so only new ones need checking.
   */
  check: boolean;
}

/** The pod spec's path inside each supported kind (core and apps/batch group kinds). */
const POD_SPEC_PATHS: Record<string, readonly string[]> = {
  Pod: ['spec'],
  Deployment: ['spec', 'template', 'spec'],
  ReplicaSet: ['spec', 'template', 'spec'],
  StatefulSet: ['spec', 'template', 'spec'],
  DaemonSet: ['spec', 'template', 'spec'],
  Job: ['spec', 'template', 'spec'],
  ReplicationController: ['spec', 'template', 'spec'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template', 'spec'],
  PodTemplate: ['template', 'spec'],
};

const KIND_GROUPS: Record<string, string> = {
  Pod: '',
  ReplicationController: '',
  PodTemplate: '',
  Deployment: 'apps',
  ReplicaSet: 'apps',
  StatefulSet: 'apps',
  DaemonSet: 'apps',
  Job: 'batch',
  CronJob: 'batch',
};

/** The kinds whose images airlock checks; `group` is the API group ('' for core). */
export function isSupportedKind(group: string, kind: string): boolean {
  return Object.hasOwn(KIND_GROUPS, kind) && KIND_GROUPS[kind] === group;
}

export const SUPPORTED_KINDS: readonly string[] = Object.keys(POD_SPEC_PATHS);

const CONTAINER_FIELDS = ['initContainers', 'containers', 'ephemeralContainers'] as const;

/**
 * Every image in `object` of `kind`: containers, initContainers (native sidecars included), ephemeralContainers and
 * image volumes (`volumes[].image.reference`). An absent pod spec or list yields nothing; a present one of the wrong
 * type, or an image that is not a non-empty string, throws ADMISSION_OBJECT_INVALID naming the field: a shape
 * airlock cannot read is denied, never skipped. `oldObject` (UPDATE of pods/ephemeralcontainers) marks the ephemeral
 * containers that already existed, by name and image, as not needing a check.
 */
export function findImages(kind: string, object: unknown, oldObject?: unknown): FoundImage[] {
  const path = POD_SPEC_PATHS[kind];
  if (!path) throw new AdmissionError('ADMISSION_OBJECT_INVALID', `kind ${kind} is not one airlock reads images from`);
  const spec = walk(object, path);
  if (spec === undefined) return [];
  const base = `/${path.join('/')}`;
  const existing = existingEphemerals(oldObject !== undefined ? walk(oldObject, path) : undefined);
  const out: FoundImage[] = [];
  for (const field of CONTAINER_FIELDS) {
    forEachItem(spec, field, base, (item, i, at) => {
      const image = imageString(item, 'image', `${at}/image`);
      const name = typeof item['name'] === 'string' ? item['name'] : `#${i}`;
      const old = field === 'ephemeralContainers' && existing.get(name) === image;
      out.push({ image, pointer: `${at}/image`, field, name, check: !old });
    });
  }
  forEachItem(spec, 'volumes', base, (item, i, at) => {
    const src = item['image'];
    if (src === undefined || src === null) return;
    if (!isRecord(src)) throw invalid(`${at}/image`, 'an object');
    const image = imageString(src, 'reference', `${at}/image/reference`);
    const name = typeof item['name'] === 'string' ? item['name'] : `#${i}`;
    out.push({ image, pointer: `${at}/image/reference`, field: 'volumes', name, check: true });
  });
  return out;
}

function walk(object: unknown, path: readonly string[]): Record<string, unknown> | undefined {
  let cur: unknown = object;
  const seen: string[] = [];
  for (const key of path) {
    if (cur === undefined || cur === null) return undefined;
    if (!isRecord(cur)) throw invalid(`/${seen.join('/')}`, 'an object');
    cur = cur[key];
    seen.push(key);
  }
  if (cur === undefined || cur === null) return undefined;
  if (!isRecord(cur)) throw invalid(`/${seen.join('/')}`, 'an object');
  return cur;
}

function forEachItem(
  spec: Record<string, unknown>,
  field: string,
  base: string,
  fn: (item: Record<string, unknown>, index: number, at: string) => void,
): void {
  const list = spec[field];
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) throw invalid(`${base}/${field}`, 'an array');
  list.forEach((item: unknown, i) => {
    const at = `${base}/${field}/${i}`;
    if (!isRecord(item)) throw invalid(at, 'an object');
    fn(item, i, at);
  });
}

function imageString(item: Record<string, unknown>, key: string, pointer: string): string {
  const v = item[key];
  if (typeof v !== 'string' || v.trim() === '') throw invalid(pointer, 'a non-empty image reference');
  return v;
}

function existingEphemerals(oldSpec: Record<string, unknown> | undefined): Map<string, string> {
  const out = new Map<string, string>();
  const list = oldSpec?.['ephemeralContainers'];
  if (!Array.isArray(list)) return out;
  for (const c of list as unknown[])
    if (isRecord(c) && typeof c['name'] === 'string' && typeof c['image'] === 'string') out.set(c['name'], c['image']);
  return out;
}

function invalid(pointer: string, what: string): AdmissionError {
  return new AdmissionError('ADMISSION_OBJECT_INVALID', `${pointer || '/'} must be ${what}`, { details: { pointer } });
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
