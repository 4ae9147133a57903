import fs from 'node:fs';
import { assertSpiffeIdInTrustDomain } from '@airlock/identity';
import { AgentError } from './errors.js';

/** Upper bound of every token the agent issues (issue 10: short-lived, ≤ 5 minutes). */
export const MAX_AGENT_TOKEN_TTL_SECONDS = 300;
/** X.509 SVIDs: one hour by default (SPIRE's default), at most a day; workloads rotate them at half-life. */
export const DEFAULT_AGENT_SVID_TTL_SECONDS = 3600;
export const MAX_AGENT_SVID_TTL_SECONDS = 24 * 3600;

/** A registration entry: a caller whose kernel facts match every selector gets `spiffeId`. */
export interface RegistrationEntry {
  spiffeId: string;
  selectors: string[];
  /** Token lifetime for this entry (default and maximum 300 s). */
  ttlSeconds: number;
  /** X.509 SVID lifetime for this entry (default 3600 s, at most a day). */
  svidTtlSeconds?: number;
}

const SELECTOR_FORMS: Record<string, RegExp> = {
  'unix:uid': /^\d{1,10}$/,
  'unix:gid': /^\d{1,10}$/,
  'unix:path': /^\/[^\0]*$/,
  'unix:sha256': /^[0-9a-f]{64}$/,
  cgroup: /^\/[^\0]*$/,
};

/** Splits `unix:uid:1500` into type `unix:uid` and value `1500`; undefined for an unknown type or bad value. */
export function parseSelector(s: string): { type: string; value: string } | undefined {
  for (const [type, form] of Object.entries(SELECTOR_FORMS)) {
    if (s.startsWith(`${type}:`)) {
      const value = s.slice(type.length + 1);
      return form.test(value) ? { type, value } : undefined;
    }
  }
  return undefined;
}

/**
 * Reads and validates the operator's entries file:
 * `{ "entries": [{ spiffeId, selectors, ttlSeconds?, svidTtlSeconds? }] }`.
 */
export function loadEntries(file: string, trustDomain: string): RegistrationEntry[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new AgentError('AGENT_ENTRIES_INVALID', `cannot read entries file ${file}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const list = (parsed as { entries?: unknown } | null)?.entries;
  if (!Array.isArray(list) || list.length === 0) {
    throw new AgentError('AGENT_ENTRIES_INVALID', `${file} must hold {"entries": [...]} with at least one entry`);
  }
  return list.map((e, i) => validateEntry(e, `${file} entries[${i}]`, trustDomain));
}

function validateEntry(e: unknown, where: string, trustDomain: string): RegistrationEntry {
  const bad = (why: string): never => {
    throw new AgentError('AGENT_ENTRIES_INVALID', `${where}: ${why}`);
  };
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return bad('must be an object');
  const r = e as Record<string, unknown>;
  const unknown = Object.keys(r).filter((k) => !['spiffeId', 'selectors', 'ttlSeconds', 'svidTtlSeconds'].includes(k));
  if (unknown.length > 0) bad(`unknown field(s) ${unknown.join(', ')}`);
  if (typeof r.spiffeId !== 'string') bad('spiffeId must be a string');
  try {
    assertSpiffeIdInTrustDomain(r.spiffeId as string, trustDomain);
  } catch (err) {
    bad((err as Error).message);
  }
  if (!Array.isArray(r.selectors) || r.selectors.length === 0) bad('selectors must be a non-empty list');
  const selectors = r.selectors as unknown[];
  for (const s of selectors) {
    if (typeof s !== 'string' || parseSelector(s) === undefined) {
      bad(
        `selector ${JSON.stringify(s)} is not one of unix:uid:<n>, unix:gid:<n>, unix:path:/abs, ` +
          'unix:sha256:<64 hex>, cgroup:/path',
      );
    }
  }
  const ttl = r.ttlSeconds ?? MAX_AGENT_TOKEN_TTL_SECONDS;
  if (!Number.isSafeInteger(ttl) || (ttl as number) < 1 || (ttl as number) > MAX_AGENT_TOKEN_TTL_SECONDS) {
    bad(`ttlSeconds must be an integer in 1..${MAX_AGENT_TOKEN_TTL_SECONDS}`);
  }
  const svidTtl = r.svidTtlSeconds ?? DEFAULT_AGENT_SVID_TTL_SECONDS;
  if (!Number.isSafeInteger(svidTtl) || (svidTtl as number) < 1 || (svidTtl as number) > MAX_AGENT_SVID_TTL_SECONDS) {
    bad(`svidTtlSeconds must be an integer in 1..${MAX_AGENT_SVID_TTL_SECONDS}`);
  }
  return {
    spiffeId: r.spiffeId as string,
    selectors: selectors as string[],
    ttlSeconds: ttl as number,
    svidTtlSeconds: svidTtl as number,
  };
}

/**
 * Whether a caller with the kernel-derived `facts` (its own selectors) satisfies `selector`. Exact match, except
 * that `cgroup:/a/b` also matches callers in a cgroup below `/a/b` (a service's sub-cgroups are still the service).
 */
export function selectorMatches(selector: string, facts: readonly string[]): boolean {
  if (facts.includes(selector)) return true;
  const parsed = parseSelector(selector);
  if (parsed?.type !== 'cgroup') return false;
  const prefix = `${selector.replace(/\/+$/, '')}/`;
  return facts.some((f) => f.startsWith('cgroup:') && f.startsWith(prefix));
}

/** Entries whose every selector matches. */
export function matchingEntries(entries: readonly RegistrationEntry[], facts: readonly string[]): RegistrationEntry[] {
  return entries.filter((e) => e.selectors.every((s) => selectorMatches(s, facts)));
}
