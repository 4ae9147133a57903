import { basename } from 'node:path';
import { SyncError } from '../errors.js';
import type { InputKind } from '../types.js';
import { isRecord, parseListInput } from './common.js';

/**
 * Guesses an input's kind from its file name, then its content. Ambiguous content (a list that could be a bazel
 * fetch list or a generic list) is an error asking for an explicit kind rather than a guess.
 */
export function detectInputKind(path: string, text: string): InputKind {
  const base = basename(path).toLowerCase();
  if (base === 'package-lock.json' || base === 'npm-shrinkwrap.json') return 'npm-lock';
  if (/requirements.*\.(txt|in)$/.test(base) || /\.requirements\.txt$/.test(base)) return 'requirements';

  const trimmed = text.replace(/^\uFEFF/, '').trimStart();
  if (trimmed.startsWith('{')) {
    let obj: unknown;
    try {
      obj = JSON.parse(trimmed);
    } catch {
      obj = undefined;
    }
    if (isRecord(obj)) {
      if ('lockfileVersion' in obj) return 'npm-lock';
      const keys = Object.keys(obj);
      if (keys.length > 0 && keys.every((k) => k.endsWith('.drv'))) return 'nix-drv';
    }
  }
  if (
    /^\s*(?:#.*\n\s*)*[A-Za-z_.]*http_(?:archive|file)\s*\(/m.test(trimmed) &&
    !trimmed.startsWith('[') &&
    !trimmed.startsWith('-')
  ) {
    return 'bazel-query';
  }
  if (/^[A-Za-z0-9][A-Za-z0-9._-]*\s*(\[[^\]]*\])?\s*==/m.test(trimmed) && /--hash[=\s]/.test(trimmed))
    return 'requirements';

  let list: unknown;
  try {
    list = parseListInput(text, path);
  } catch {
    list = undefined;
  }
  if (Array.isArray(list) && list.length > 0 && list.every(isRecord)) {
    const items = list as Record<string, unknown>[];
    if (items.every((e) => 'hash' in e)) return 'nix-fetch';
    if (items.every((e) => 'urls' in e && 'name' in e && !('hash' in e)) || items.some((e) => 'strip_prefix' in e))
      return 'bazel-fetch';
    if (items.every((e) => 'url' in e && !('urls' in e))) return 'generic';
  }
  throw new SyncError(
    'SYNC_INPUT_INVALID',
    `${path}: cannot tell what kind of input this is; give its kind explicitly`,
  );
}
