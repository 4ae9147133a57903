import { isHex, parseSri } from '@airlock/core';
import { assertSchema } from '../schemas.js';
import type { BazelFetch, ParsedInput } from '../types.js';
import { isHttpUrl, isRecord, parseListInput, throwIfProblems, type InputProblem } from './common.js';
import { parseStarlarkCalls, type StarlarkValue } from './starlark.js';

/** Bazel repository names: what a mirror entry is named by. */
export const BAZEL_REPO_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.~+-]{0,199}$/;

const RULES = new Set(['http_archive', 'http_file']);

/**
 * Parses the text of `bazel query 'kind(http_archive, //external:*)' --output=build` (http_file rules too).
 * Each rule is a call with literal attributes; comments (`# /path/WORKSPACE:12:1`) and attributes we do not need
 * are skipped. A rule needs urls/url and sha256 (or an `integrity` SRI); empty strings count as missing, because
 * that is how query prints an unset attribute.
 */
export function parseBazelQueryOutput(text: string, source = 'bazel query output'): ParsedInput<BazelFetch> {
  const calls = parseStarlarkCalls(text, source);
  const notes: string[] = [];
  const problems: InputProblem[] = [];
  const raw: unknown[] = [];
  for (const call of calls) {
    const ruleClass = call.callee.slice(call.callee.lastIndexOf('.') + 1);
    const nameV = call.kwargs.get('name');
    const name = typeof nameV === 'string' ? nameV : undefined;
    const entry = name ?? `${ruleClass} at line ${call.line}`;
    if (!RULES.has(ruleClass)) {
      notes.push(`${source}: skipped ${call.callee} rule ${entry}`);
      continue;
    }
    if (name === undefined) {
      problems.push({ entry, problem: "no 'name' attribute" });
      continue;
    }
    const urls: string[] = [];
    const url = call.kwargs.get('url');
    if (typeof url === 'string' && url !== '') urls.push(url);
    const list = call.kwargs.get('urls');
    if (Array.isArray(list)) {
      for (const u of list) {
        if (typeof u === 'string' && u !== '') urls.push(u);
        else problems.push({ entry, problem: `urls holds a non-literal value (${describe(u)})` });
      }
    } else if (list !== undefined && list !== null) {
      problems.push({ entry, problem: `urls is not a list literal (${describe(list)})` });
      continue;
    }
    const sha256 = call.kwargs.get('sha256');
    const integrity = call.kwargs.get('integrity');
    const strip = call.kwargs.get('strip_prefix');
    raw.push({
      name,
      urls,
      ...(typeof sha256 === 'string' && sha256 !== '' ? { sha256 } : {}),
      ...(typeof integrity === 'string' && integrity !== '' ? { integrity } : {}),
      ...(typeof strip === 'string' && strip !== '' ? { strip_prefix: strip } : {}),
      type: ruleClass,
    });
  }
  throwIfProblems(source, problems);
  const parsed = fromRawList(raw, source, true);
  return { kind: 'bazel-query', entries: parsed.entries, notes: [...notes, ...parsed.notes] };
}

/**
 * Parses a JSON/YAML fetch list: `[{ name, urls, sha256, strip_prefix?, type? }]` where `type` is the rule kind
 * (`http_archive`, the default, or `http_file`). Schema: schemas/sync-bazel-fetch-list.schema.json.
 */
export function parseBazelFetchList(text: string, source = 'bazel fetch list'): ParsedInput<BazelFetch> {
  const data = parseListInput(text, source);
  const parsed = fromRawList(data, source, false);
  return { kind: 'bazel-fetch', entries: parsed.entries, notes: parsed.notes };
}

function fromRawList(data: unknown, source: string, fromQuery: boolean): { entries: BazelFetch[]; notes: string[] } {
  const label = (k: string): string => {
    const e = Array.isArray(data) ? (data[Number(k)] as unknown) : undefined;
    return isRecord(e) && typeof e.name === 'string' ? `'${e.name}'` : `entry ${k}`;
  };
  // Pins first, so an unpinned entry is reported as such rather than as a schema detail.
  if (Array.isArray(data)) {
    const problems: InputProblem[] = [];
    data.forEach((e, i) => {
      if (!isRecord(e)) return;
      const hasSha = typeof e.sha256 === 'string' && e.sha256 !== '';
      const hasIntegrity = fromQuery && typeof e.integrity === 'string' && e.integrity !== '';
      if (!hasSha && !hasIntegrity)
        problems.push({
          entry: label(String(i)),
          problem: `no sha256${fromQuery ? ' or integrity' : ''}`,
          unpinned: true,
        });
      const urls = e.urls;
      if (Array.isArray(urls) && urls.length === 0)
        problems.push({ entry: label(String(i)), problem: 'no urls', unpinned: true });
    });
    throwIfProblems(source, problems);
  }
  assertSchema('sync-bazel-fetch-list', data, source, label);
  const list = data as {
    name: string;
    urls: string[];
    sha256?: string;
    integrity?: string;
    strip_prefix?: string;
    type?: 'http_archive' | 'http_file';
  }[];
  const problems: InputProblem[] = [];
  const notes: string[] = [];
  const byName = new Map<string, BazelFetch>();
  for (const e of list) {
    const entry = `'${e.name}'`;
    const expected: BazelFetch['expected'] = {};
    if (e.sha256 !== undefined) {
      if (!isHex(e.sha256.toLowerCase(), 32)) {
        problems.push({ entry, problem: `sha256 '${e.sha256}' is not 64 hex characters` });
        continue;
      }
      expected.sha256 = e.sha256.toLowerCase();
    }
    if (e.integrity !== undefined) {
      try {
        for (const d of parseSri(e.integrity)) {
          if (d.algorithm === 'sha1') continue;
          if (expected[d.algorithm] !== undefined && expected[d.algorithm] !== d.hex) {
            problems.push({ entry, problem: `sha256 and integrity disagree` });
          }
          expected[d.algorithm] = d.hex;
        }
      } catch (err) {
        problems.push({ entry, problem: `malformed integrity: ${(err as Error).message}` });
        continue;
      }
      if (Object.keys(expected).length === 0) {
        problems.push({ entry, problem: 'integrity has no sha256/sha384/sha512 hash', unpinned: true });
        continue;
      }
    }
    const bad = e.urls.filter((u) => !isHttpUrl(u));
    if (bad.length > 0) {
      problems.push({ entry, problem: `not an http(s) URL: ${bad.join(', ')}` });
      continue;
    }
    const item: BazelFetch = {
      name: e.name,
      urls: [...new Set(e.urls)],
      ...(expected.sha256 ? { sha256: expected.sha256 } : {}),
      expected,
      stripPrefix: e.strip_prefix ?? null,
      type: e.type ?? 'http_archive',
    };
    const prev = byName.get(e.name);
    if (prev) {
      if (JSON.stringify(prev.expected) !== JSON.stringify(item.expected))
        problems.push({ entry, problem: 'listed twice with different hashes' });
      else notes.push(`${source}: '${e.name}' listed twice; kept the first`);
      continue;
    }
    byName.set(e.name, item);
  }
  throwIfProblems(source, problems);
  return { entries: [...byName.values()], notes };
}

function describe(v: StarlarkValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v.kind === 'opaque' ? v.text : 'a dict';
  return JSON.stringify(v);
}
