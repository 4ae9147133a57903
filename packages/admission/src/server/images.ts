/**
 * The image references an object names, for the messages of denials the server writes itself (deadline, internal
 * error). Only a message: the controller does the real, kind-aware extraction. Bounded in depth, count and length,
 * since the object is attacker input.
 */

const CONTAINER_LISTS = new Set(['containers', 'initContainers', 'ephemeralContainers']);
const MAX_DEPTH = 12;
const MAX_IMAGES = 20;
const MAX_REF = 200;

export function imagesNamedIn(object: unknown): string[] {
  const found = new Set<string>();
  walk(object, 0, found);
  return [...found];
}

function walk(node: unknown, depth: number, found: Set<string>): void {
  if (depth > MAX_DEPTH || found.size >= MAX_IMAGES || typeof node !== 'object' || node === null) return;
  if (Array.isArray(node)) {
    for (const item of node) walk(item, depth + 1, found);
    return;
  }
  for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
    if (CONTAINER_LISTS.has(key) && Array.isArray(value)) {
      for (const c of value) add(found, (c as { image?: unknown } | null)?.image);
    } else if (key === 'volumes' && Array.isArray(value)) {
      for (const v of value) add(found, (v as { image?: { reference?: unknown } } | null)?.image?.reference);
    }
    walk(value, depth + 1, found);
  }
}

function add(found: Set<string>, ref: unknown): void {
  if (typeof ref !== 'string' || ref === '' || found.size >= MAX_IMAGES) return;
  found.add(ref.length > MAX_REF ? `${ref.slice(0, MAX_REF - 3)}...` : ref);
}

/** "a, b and 3 more" for a one-line message. */
export function listForMessage(images: string[], max = 5): string {
  if (images.length === 0) return '';
  const shown = images.slice(0, max).join(', ');
  return images.length > max ? `${shown} and ${images.length - max} more` : shown;
}
