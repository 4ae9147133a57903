import { isHex, parseSri } from '@airlock/core';
import { assertSchema } from '../schemas.js';
import type { GenericFetch, ParsedInput } from '../types.js';
import {
  isHttpUrl,
  isRecord,
  isSafeFilename,
  parseListInput,
  throwIfProblems,
  urlBasename,
  type InputProblem,
} from './common.js';

/**
 * Reads a JSON/YAML list of plain files `[{ url, sha256 | sha512 | integrity (SRI), name? }]`
 * (schemas/sync-generic-list.schema.json). `name` defaults to the URL's last path segment and is the file name
 * in the mirror, so it must be a safe file name.
 */
export function parseGenericList(text: string, source = 'generic list'): ParsedInput<GenericFetch> {
  const data = parseListInput(text, source);
  const label = (k: string): string => {
    const e = Array.isArray(data) ? (data[Number(k)] as unknown) : undefined;
    if (!isRecord(e)) return `entry ${k}`;
    return typeof e.name === 'string' ? `'${e.name}'` : typeof e.url === 'string' ? `'${e.url}'` : `entry ${k}`;
  };
  if (Array.isArray(data)) {
    const unpinned: InputProblem[] = [];
    data.forEach((e, i) => {
      if (!isRecord(e)) return;
      if (!['sha256', 'sha512', 'integrity'].some((k) => typeof e[k] === 'string' && e[k] !== '')) {
        unpinned.push({ entry: label(String(i)), problem: 'no sha256, sha512 or integrity', unpinned: true });
      }
    });
    throwIfProblems(source, unpinned);
  }
  assertSchema('sync-generic-list', data, source, label);

  const problems: InputProblem[] = [];
  const notes: string[] = [];
  const byName = new Map<string, GenericFetch>();
  (data as { url: string; sha256?: string; sha512?: string; integrity?: string; name?: string }[]).forEach((e, i) => {
    const entry = label(String(i));
    if (!isHttpUrl(e.url)) return void problems.push({ entry, problem: `not an http(s) URL: ${e.url}` });
    const expected: GenericFetch['expected'] = {};
    const put = (alg: 'sha256' | 'sha384' | 'sha512', hex: string): void => {
      if (expected[alg] !== undefined && expected[alg] !== hex)
        problems.push({ entry, problem: `conflicting ${alg} pins` });
      expected[alg] = hex;
    };
    if (e.sha256 !== undefined) {
      if (!isHex(e.sha256.toLowerCase(), 32))
        return void problems.push({ entry, problem: 'sha256 is not 64 hex characters' });
      put('sha256', e.sha256.toLowerCase());
    }
    if (e.sha512 !== undefined) {
      if (!isHex(e.sha512.toLowerCase(), 64))
        return void problems.push({ entry, problem: 'sha512 is not 128 hex characters' });
      put('sha512', e.sha512.toLowerCase());
    }
    if (e.integrity !== undefined) {
      try {
        for (const d of parseSri(e.integrity)) if (d.algorithm !== 'sha1') put(d.algorithm, d.hex);
      } catch (err) {
        return void problems.push({ entry, problem: `malformed integrity: ${(err as Error).message}` });
      }
    }
    if (Object.keys(expected).length === 0)
      return void problems.push({ entry, problem: 'no sha256/sha384/sha512 pin (sha1 is too weak)', unpinned: true });
    const name = e.name ?? urlBasename(e.url) ?? '';
    if (!isSafeFilename(name))
      return void problems.push({ entry, problem: `'${name}' is not a safe file name; give 'name'` });
    const prev = byName.get(name);
    if (prev) {
      if (JSON.stringify(prev.expected) !== JSON.stringify(expected))
        problems.push({ entry, problem: `name '${name}' is used twice with different pins` });
      else notes.push(`${source}: '${name}' listed twice; kept the first URL`);
      return;
    }
    byName.set(name, { name, url: e.url, expected });
  });
  throwIfProblems(source, problems);
  return { kind: 'generic', entries: [...byName.values()], notes };
}
