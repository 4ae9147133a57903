import { check } from '@airlock/schemas';
import type { MirrorEndpoint, MirrorFetch } from './mirror-endpoint.js';
import type { MirrorDependency } from './provenance.js';
import { RunnerError } from './errors.js';

export interface ResolvedMirrorFetches {
  dependencies: MirrorDependency[];
  /** The newest snapshot any lookup reported (the head the build saw), if any blob was fetched. */
  snapshotId?: string;
  /** Fetched responses that are not mirror blobs (rendered metadata: packuments, simple pages). */
  metadataResponses: number;
}

const HEX = { sha1: 40, sha512: 128 } as const;

/**
 * Turns the bodies the build received into resolvedDependencies: each distinct sha256 is looked up in the mirror;
 * a blob becomes one dependency per entry naming it (purl, upstream URI, digests), anything else was metadata.
 */
export async function resolveMirrorFetches(
  mirror: MirrorEndpoint,
  fetches: readonly MirrorFetch[] = mirror.fetched(),
): Promise<ResolvedMirrorFetches> {
  const distinct = new Map<string, MirrorFetch>();
  for (const f of fetches) if (!distinct.has(f.sha256)) distinct.set(f.sha256, f);
  const dependencies: MirrorDependency[] = [];
  let newest: { id: string; sequence: number } | undefined;
  let metadataResponses = 0;
  for (const [sha256, fetch] of [...distinct].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const r = await mirror.get(`/-/airlock/blobs/${sha256}`);
    if (r.status === 404) {
      metadataResponses++;
      continue;
    }
    if (r.status !== 200) {
      throw new RunnerError(
        'RUNNER_MIRROR_UNAVAILABLE',
        `mirror lookup of sha256:${sha256} (fetched as ${fetch.path}) answered HTTP ${r.status}`,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(r.body.toString('utf8'));
    } catch (cause) {
      throw new RunnerError('RUNNER_MIRROR_UNAVAILABLE', `mirror lookup of sha256:${sha256} returned invalid JSON`, {
        cause,
      });
    }
    // The mirror's answer (mirror-blob-lookup.v1.schema.json) must be about the blob asked for.
    const checked = check('mirror-blob-lookup.v1', body, {}, (e) => new RunnerError('RUNNER_INTERNAL', e.message));
    const problems = checked.ok ? (checked.value.sha256 === sha256 ? [] : [`sha256: not ${sha256}`]) : checked.problems;
    if (!checked.ok || problems.length > 0) {
      throw new RunnerError(
        'RUNNER_MIRROR_UNAVAILABLE',
        `mirror lookup of sha256:${sha256} returned an unexpected document: ${problems.join('; ')}`,
      );
    }
    const info = checked.value;
    if (!newest || info.snapshot.sequence > newest.sequence) newest = info.snapshot;
    const seen = new Set<string>();
    for (const e of info.entries) {
      const digest: MirrorDependency['digest'] = { sha256 };
      for (const alg of ['sha1', 'sha512'] as const) {
        const v = e.digests?.[alg];
        if (typeof v === 'string' && new RegExp(`^[0-9a-f]{${HEX[alg]}}$`).test(v)) digest[alg] = v;
      }
      const dep: MirrorDependency = {
        ...(e.purl ? { purl: e.purl } : {}),
        uri: e.urls[0] ?? `mirror:${fetch.path}`,
        name: e.name,
        ...(e.version ? { version: e.version } : {}),
        digest,
      };
      const key = `${dep.purl ?? ''}|${dep.uri ?? ''}`;
      if (seen.has(key)) continue;
      seen.add(key);
      dependencies.push(dep);
    }
    if (info.entries.length === 0) dependencies.push({ uri: `mirror:${fetch.path}`, digest: { sha256 } });
  }
  return { dependencies, ...(newest ? { snapshotId: newest.id } : {}), metadataResponses };
}

/** Caller-supplied dependencies first, then the recorded ones not already named (by sha256 + purl/uri). */
export function mergeDependencies(
  given: readonly MirrorDependency[],
  recorded: readonly MirrorDependency[],
): MirrorDependency[] {
  const key = (d: MirrorDependency) => `${d.digest.sha256}|${d.purl ?? d.uri ?? ''}`;
  const keys = new Set(given.map(key));
  return [...given, ...recorded.filter((d) => !keys.has(key(d)))];
}
