import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { semver } from './lazy-deps.js';
import { PolicyError } from './errors.js';
import { normalizePypiName, osvEcosystem, parsePurl, purlPackageKey, type ParsedPurl } from './purl.js';

/** The part of an OSV record (https://ossf.github.io/osv-schema/) the deny-list reads. */
export interface OsvAdvisory {
  id: string;
  aliases?: string[];
  summary?: string;
  withdrawn?: string;
  affected?: OsvAffected[];
}

export interface OsvAffected {
  package?: { ecosystem?: string; name?: string; purl?: string };
  versions?: string[];
  ranges?: { type: string; events: OsvEvent[] }[];
}

export type OsvEvent = { introduced: string } | { fixed: string } | { last_affected: string } | { limit: string };

/** Advisories indexed by package, ready for many lookups. */
export interface AdvisoryIndex {
  /** How many advisory files/records were loaded (for `expected`). */
  count: number;
  byPackage: ReadonlyMap<string, { advisory: OsvAdvisory; affected: OsvAffected }[]>;
}

const MAX_FILE_BYTES = 16 * 1024 * 1024;

/** Reads every `*.json` file under `dir` (recursively, in sorted order); each holds one OSV record or an array. */
export function loadOsvDirectory(dir: string): OsvAdvisory[] {
  const out: OsvAdvisory[] = [];
  const walk = (d: string): void => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch (cause) {
      throw new PolicyError(
        'POLICY_ADVISORY_INVALID',
        `cannot read advisory directory ${d}: ${(cause as Error).message}`,
        {
          cause,
        },
      );
    }
    for (const n of names) {
      const p = join(d, n);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.isFile() && n.endsWith('.json')) {
        if (st.size > MAX_FILE_BYTES) throw new PolicyError('POLICY_ADVISORY_INVALID', `${p}: larger than 16 MiB`);
        out.push(...parseOsv(readFileSync(p, 'utf8'), p));
      }
    }
  };
  walk(dir);
  return out;
}

/** Parses one OSV file (a record or an array of records), checking the fields the deny-list relies on. */
export function parseOsv(text: string, where = 'OSV record'): OsvAdvisory[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new PolicyError('POLICY_ADVISORY_INVALID', `${where}: not JSON`, { cause });
  }
  const records = Array.isArray(value) ? value : [value];
  return records.map((r, i) => checkRecord(r, records.length > 1 ? `${where}[${i}]` : where));
}

function checkRecord(r: unknown, where: string): OsvAdvisory {
  const fail = (msg: string): never => {
    throw new PolicyError('POLICY_ADVISORY_INVALID', `${where}: ${msg}`);
  };
  if (typeof r !== 'object' || r === null || Array.isArray(r)) return fail('not an object');
  const o = r as Record<string, unknown>;
  if (typeof o.id !== 'string' || o.id === '') fail('id must be a non-empty string');
  if (o.aliases !== undefined && !isStringArray(o.aliases)) fail('aliases must be an array of strings');
  if (o.affected !== undefined && !Array.isArray(o.affected)) fail('affected must be an array');
  ((o.affected as unknown[] | undefined) ?? []).forEach((a, i) => {
    const at = `affected[${i}]`;
    if (typeof a !== 'object' || a === null) return fail(`${at} must be an object`);
    const af = a as Record<string, unknown>;
    if (af.versions !== undefined && !isStringArray(af.versions)) fail(`${at}.versions must be an array of strings`);
    if (af.ranges !== undefined && !Array.isArray(af.ranges)) fail(`${at}.ranges must be an array`);
    ((af.ranges as unknown[] | undefined) ?? []).forEach((rg, j) => {
      const g = rg as Record<string, unknown> | null;
      if (typeof g !== 'object' || g === null || typeof g.type !== 'string' || !Array.isArray(g.events))
        return fail(`${at}.ranges[${j}] needs a type and events`);
      g.events.forEach((e: unknown, k: number) => {
        const keys = typeof e === 'object' && e !== null ? Object.keys(e) : [];
        const ok =
          keys.length === 1 &&
          ['introduced', 'fixed', 'last_affected', 'limit'].includes(keys[0]!) &&
          typeof (e as Record<string, unknown>)[keys[0]!] === 'string';
        if (!ok) fail(`${at}.ranges[${j}].events[${k}] must be one of introduced/fixed/last_affected/limit: string`);
      });
    });
  });
  return o as unknown as OsvAdvisory;
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/** Indexes by package key (`type/name`, from `package.purl` or from ecosystem + name); withdrawn ones are dropped. */
export function indexAdvisories(advisories: readonly OsvAdvisory[]): AdvisoryIndex {
  const byPackage = new Map<string, { advisory: OsvAdvisory; affected: OsvAffected }[]>();
  for (const advisory of advisories) {
    if (advisory.withdrawn) continue;
    for (const affected of advisory.affected ?? []) {
      const key = affectedKey(affected);
      if (key === undefined) continue;
      const list = byPackage.get(key) ?? [];
      list.push({ advisory, affected });
      byPackage.set(key, list);
    }
  }
  return { count: advisories.length, byPackage };
}

const ECOSYSTEM_TO_TYPE: Record<string, string> = {
  npm: 'npm',
  pypi: 'pypi',
  go: 'golang',
  maven: 'maven',
  'crates.io': 'cargo',
  rubygems: 'gem',
  nuget: 'nuget',
  packagist: 'composer',
  hex: 'hex',
  pub: 'pub',
  swifturl: 'swift',
  cran: 'cran',
};

function affectedKey(a: OsvAffected): string | undefined {
  const pkg = a.package;
  if (!pkg) return undefined;
  if (pkg.purl) {
    const p = parsePurl(pkg.purl);
    if (p) return purlPackageKey(p);
  }
  if (!pkg.ecosystem || !pkg.name) return undefined;
  const type = ECOSYSTEM_TO_TYPE[pkg.ecosystem.split(':')[0]!.toLowerCase()];
  if (!type) return undefined;
  return `${type}/${type === 'pypi' ? normalizePypiName(pkg.name) : pkg.name}`;
}

/** The advisories (ids) affecting this purl's version; a purl without a version matches nothing. */
export function advisoriesFor(index: AdvisoryIndex, purl: string): OsvAdvisory[] {
  const p = parsePurl(purl);
  if (!p?.version) return [];
  const hits = index.byPackage.get(purlPackageKey(p)) ?? [];
  const out: OsvAdvisory[] = [];
  for (const { advisory, affected } of hits) {
    if (out.includes(advisory)) continue;
    if (isAffected(p, p.version, affected)) out.push(advisory);
  }
  return out;
}

/**
 * OSV evaluation (https://ossf.github.io/osv-schema/#evaluation): listed in `versions`, or inside a SEMVER or
 * ECOSYSTEM range (events sorted by version, `introduced` opens, `fixed` and past `last_affected` close). GIT ranges
 * need the commit graph and are skipped (their `versions` list still applies).
 */
export function isAffected(p: ParsedPurl, version: string, a: OsvAffected): boolean {
  if (a.versions?.includes(version)) return true;
  for (const range of a.ranges ?? []) {
    if (range.type !== 'SEMVER' && range.type !== 'ECOSYSTEM') continue;
    const cmp = comparator(range.type, p);
    if (inRange(version, range.events, cmp)) return true;
  }
  return false;
}

type Compare = (a: string, b: string) => number;

function inRange(version: string, events: readonly OsvEvent[], cmp: Compare): boolean {
  const value = (e: OsvEvent): string => Object.values(e)[0] as string;
  const sorted = [...events]
    .filter((e) => !('limit' in e))
    .sort((x, y) => (value(x) === '0' ? -1 : value(y) === '0' ? 1 : cmp(value(x), value(y))));
  let affected = false;
  for (const e of sorted) {
    if ('introduced' in e) {
      if (e.introduced === '0' || cmp(version, e.introduced) >= 0) affected = true;
    } else if ('fixed' in e) {
      if (cmp(version, e.fixed) >= 0) affected = false;
    } else if ('last_affected' in e) {
      if (cmp(version, e.last_affected) > 0) affected = false;
    }
  }
  return affected;
}

/** SEMVER ranges, and npm's ECOSYSTEM ranges, compare as semver; other ecosystems with a generic version order. */
function comparator(type: string, p: ParsedPurl): Compare {
  if (type === 'SEMVER' || osvEcosystem(p) === 'npm') {
    return (a, b) => {
      const x = semver().parse(a.replace(/^v/, ''));
      const y = semver().parse(b.replace(/^v/, ''));
      return x && y ? semver().compare(x, y) : compareGeneric(a, b);
    };
  }
  return compareGeneric;
}

/** PEP 440 post-release spellings: after the release they follow. */
const POST = new Set<string | number>(['post', 'rev', 'r']);

/**
 * A generic version order (an approximation for non-semver ecosystems such as PyPI): numeric runs compare as numbers,
 * other runs as strings, a release sorts after its pre-releases (`1.0rc1` < `1.0`) and before its post-releases
 * (`1.0` < `1.0.post1`, PEP 440 spellings post/rev/r).
 */
export function compareGeneric(a: string, b: string): number {
  const split = (v: string): (number | string)[] =>
    (
      v
        .replace(/^v/, '')
        .toLowerCase()
        .match(/[0-9]+|[a-z]+/g) ?? []
    ).map((t) => (/^[0-9]/.test(t) ? Number(t) : t));
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const s = x[i];
    const t = y[i];
    // A missing numeric part is 0 (`1.0` = `1.0.0`).
    if (s === t || (s === undefined && t === 0) || (t === undefined && s === 0)) continue;
    if (s === undefined) return typeof t === 'number' || POST.has(t!) ? -1 : 1;
    if (t === undefined) return typeof s === 'number' || POST.has(s) ? 1 : -1;
    if (typeof s === 'number' && typeof t === 'number') return s < t ? -1 : 1;
    if (typeof s === 'number') return 1;
    if (typeof t === 'number') return -1;
    return s < t ? -1 : 1;
  }
  return 0;
}
