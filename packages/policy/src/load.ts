import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { sha256Hex } from '@airlock/core';
import { semver, yaml } from './lazy-deps.js';
import { PolicyError } from './errors.js';
import { compileAuthority, type CompiledAuthority } from './match.js';
import { problemsAgainst } from './schemas.js';
import type { PolicyDocument } from './types.js';

/** A validated policy with everything the engine needs precomputed. */
export interface LoadedPolicy {
  document: PolicyDocument;
  /** sha256 of the policy file's bytes (the VSA's policy.digest). */
  digest: { sha256: string };
  /** Where it came from (the VSA's policy.uri). */
  uri: string;
  authorities: ReadonlyMap<string, CompiledAuthority>;
  /** provenance.maxAge in seconds. */
  maxAgeSeconds?: number;
}

const MAX_POLICY_BYTES = 1024 * 1024;

/**
 * Parses and validates a policy (YAML or JSON; JSON is read as YAML 1.2, so both go through one parser that refuses
 * duplicate keys). Every problem names its field, e.g. `policy.provenance.builderIds[0]: must be string`.
 */
export function parsePolicy(bytes: Buffer | string, uri = 'policy'): LoadedPolicy {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  if (buf.length > MAX_POLICY_BYTES)
    throw new PolicyError('POLICY_UNREADABLE', `${uri}: larger than ${MAX_POLICY_BYTES} bytes`);
  const doc = yaml().parseDocument(buf.toString('utf8'), { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0)
    throw new PolicyError('POLICY_UNREADABLE', `${uri}: not valid YAML or JSON: ${doc.errors[0]!.message}`);
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (cause) {
    throw new PolicyError('POLICY_UNREADABLE', `${uri}: ${(cause as Error).message}`, { cause });
  }
  const problems = validate(value);
  if (problems.length > 0)
    throw new PolicyError('POLICY_INVALID', `${uri} is not a valid policy:\n  - ${problems.join('\n  - ')}`, {
      details: { problems },
    });
  const document = value as PolicyDocument;
  const authorities = new Map(
    Object.entries(document.authorities).map(([name, a]) => [name, compileAuthority(name, a)] as const),
  );
  const maxAge = document.provenance?.maxAge;
  return {
    document,
    digest: { sha256: sha256Hex(buf) },
    uri,
    authorities,
    ...(maxAge !== undefined ? { maxAgeSeconds: parseDuration(maxAge) } : {}),
  };
}

/**
 * Reads a policy file; its relative paths (trustedRoots, publicKey.path, advisories.osvDirectory) become absolute,
 * relative to the file. The digest is over the bytes as read.
 */
export function loadPolicyFile(path: string): LoadedPolicy {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    throw new PolicyError('POLICY_UNREADABLE', `cannot read policy ${path}: ${(cause as Error).message}`, { cause });
  }
  const loaded = parsePolicy(bytes, pathToFileURL(resolve(path)).href);
  const base = dirname(resolve(path));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  const d = loaded.document;
  if (d.trustedRoots) d.trustedRoots = d.trustedRoots.map(abs);
  for (const a of Object.values(d.authorities)) if (a.publicKey) a.publicKey.path = abs(a.publicKey.path);
  if (d.advisories) d.advisories.osvDirectory = abs(d.advisories.osvDirectory);
  return loaded;
}

function validate(value: unknown): string[] {
  const problems = problemsAgainst('policy.v1', value, 'policy');
  return problems.length > 0 ? problems : semanticProblems(value as PolicyDocument);
}

/** What the schema cannot say (see its description). */
function semanticProblems(p: PolicyDocument): string[] {
  const problems: string[] = [];
  for (const [name, a] of Object.entries(p.authorities)) {
    const at = `policy.authorities.${name}`;
    if ((a.keyless === undefined) === (a.publicKey === undefined)) {
      problems.push(`${at}: give exactly one of keyless, publicKey`);
      continue;
    }
    if (!a.keyless) continue;
    const k = a.keyless;
    if ((k.subject === undefined) === (k.subjectRegExp === undefined))
      problems.push(`${at}.keyless: give exactly one of subject, subjectRegExp`);
    if ((k.issuer === undefined) === (k.issuerRegExp === undefined))
      problems.push(`${at}.keyless: give exactly one of issuer, issuerRegExp`);
    for (const key of ['subjectRegExp', 'issuerRegExp'] as const) {
      if (k[key] === undefined) continue;
      try {
        new RegExp(k[key]!);
      } catch (err) {
        problems.push(`${at}.keyless.${key}: not a regular expression (${(err as Error).message})`);
      }
    }
  }
  const refs = (names: string[] | undefined, at: string): void =>
    names?.forEach((n, i) => {
      if (!Object.hasOwn(p.authorities, n)) problems.push(`${at}[${i}]: no authority named '${n}'`);
    });
  p.attestations?.forEach((r, i) => refs(r.authorities, `policy.attestations[${i}].authorities`));
  refs(p.provenance?.authorities, 'policy.provenance.authorities');
  refs(p.dependencies?.syncAuthorities, 'policy.dependencies.syncAuthorities');
  refs(p.sbom?.authorities, 'policy.sbom.authorities');
  const semverTags = p.provenance?.source?.refs?.semverTags;
  if (semverTags !== undefined && semver().validRange(semverTags) === null)
    problems.push(`policy.provenance.source.refs.semverTags: '${semverTags}' is not a semver range`);
  if (p.dependencies && !p.provenance)
    problems.push('policy.dependencies: needs a provenance section (dependencies are read from the provenance)');
  if (p.sbom?.coverDependencies !== false && p.sbom && !p.provenance)
    problems.push('policy.sbom.coverDependencies: needs a provenance section (or set it to false)');
  if (p.advisories && !p.provenance)
    problems.push('policy.advisories: needs a provenance section (dependencies are read from the provenance)');
  return problems;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** `1w2d`, `12h`, `90m` → seconds (the schema has checked the shape). */
export function parseDuration(text: string): number {
  let total = 0;
  for (const m of text.matchAll(/([0-9]+)([smhdw])/g)) total += Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  return total;
}
