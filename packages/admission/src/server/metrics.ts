import type { AdmissionEvents } from '../types.js';

/**
 * The server's Prometheus counters, written by hand in the text exposition format (0.0.4). Label values that come
 * from requests (object kind, registry host) are bounded so a client cannot grow the series without limit.
 */

export type Endpoint = 'validate' | 'mutate' | 'workspace';
/** allow/deny/warn: the controller's verdict; error: the server denied (deadline, controller error, bad input). */
export type Verdict = 'allow' | 'deny' | 'warn' | 'error';

/** Seconds; the last finite bucket is above the 8 s default deadline and the 10 s webhook timeout. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** The kinds airlock reads images from; any other kind is counted as `other`. */
const KNOWN_KINDS = new Set([
  'Pod',
  'Deployment',
  'ReplicaSet',
  'StatefulSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'ReplicationController',
  'PodTemplate',
  'Workspace',
]);
const MAX_HOSTS = 64;
const HOST_SHAPE = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/;

interface Histogram {
  buckets: number[];
  count: number;
  sum: number;
}

export class AdmissionMetrics implements AdmissionEvents {
  private readonly requests = new Map<string, number>();
  private readonly latency = new Map<Endpoint, Histogram>();
  private readonly registryErrors = new Map<string, number>();
  private readonly rejected = new Map<string, number>();
  private readonly tlsReloads = new Map<'ok' | 'error', number>();
  private cacheHits = 0;
  private cacheMisses = 0;
  private verifications = 0;
  private tagLookups = 0;

  verification(): void {
    this.verifications++;
  }

  tagLookup(): void {
    this.tagLookups++;
  }

  cache(hit: boolean): void {
    if (hit) this.cacheHits++;
    else this.cacheMisses++;
  }

  registryError(host: string): void {
    let label = HOST_SHAPE.test(host) ? host.toLowerCase() : 'other';
    if (!this.registryErrors.has(label) && this.registryErrors.size >= MAX_HOSTS) label = 'other';
    bump(this.registryErrors, label);
  }

  /** One answered admission or workspace request. */
  request(endpoint: Endpoint, kind: string | undefined, verdict: Verdict, seconds: number): void {
    const k = kind !== undefined && KNOWN_KINDS.has(kind) ? kind : 'other';
    bump(this.requests, `${endpoint}\u0000${k}\u0000${verdict}`);
    const h = this.latency.get(endpoint) ?? { buckets: LATENCY_BUCKETS.map(() => 0), count: 0, sum: 0 };
    LATENCY_BUCKETS.forEach((le, i) => {
      if (seconds <= le) h.buckets[i]!++;
    });
    h.count++;
    h.sum += seconds;
    this.latency.set(endpoint, h);
  }

  /** A request refused before it reached the controller (HTTP 4xx/5xx), by error code. */
  rejectedRequest(code: string): void {
    bump(this.rejected, code);
  }

  tlsReload(ok: boolean): void {
    bump(this.tlsReloads, ok ? 'ok' : 'error');
  }

  /** Counter values for tests and the bench (the same numbers `/metrics` prints). */
  snapshot(): {
    cacheHits: number;
    cacheMisses: number;
    verifications: number;
    tagLookups: number;
    requests: Record<string, number>;
  } {
    const requests = Object.fromEntries(
      [...this.requests].map(([key, n]) => [key.split('\u0000').join('/'), n] as const),
    );
    return {
      cacheHits: this.cacheHits,
      cacheMisses: this.cacheMisses,
      verifications: this.verifications,
      tagLookups: this.tagLookups,
      requests,
    };
  }

  render(): string {
    const out: string[] = [];
    family(
      out,
      'airlock_admission_requests_total',
      'counter',
      'Admission and workspace requests answered, by endpoint, object kind and verdict.',
    );
    for (const [key, n] of this.requests) {
      const [endpoint, kind, verdict] = key.split('\u0000');
      out.push(`airlock_admission_requests_total${labels({ endpoint, kind, verdict })} ${n}`);
    }
    family(out, 'airlock_admission_request_duration_seconds', 'histogram', 'Time from request arrival to answer.');
    for (const [endpoint, h] of this.latency) {
      LATENCY_BUCKETS.forEach((le, i) =>
        out.push(
          `airlock_admission_request_duration_seconds_bucket${labels({ endpoint, le: String(le) })} ${h.buckets[i]}`,
        ),
      );
      out.push(`airlock_admission_request_duration_seconds_bucket${labels({ endpoint, le: '+Inf' })} ${h.count}`);
      out.push(`airlock_admission_request_duration_seconds_sum${labels({ endpoint })} ${h.sum}`);
      out.push(`airlock_admission_request_duration_seconds_count${labels({ endpoint })} ${h.count}`);
    }
    family(out, 'airlock_admission_cache_hits_total', 'counter', 'Verification results served from the cache.');
    out.push(`airlock_admission_cache_hits_total ${this.cacheHits}`);
    family(
      out,
      'airlock_admission_cache_misses_total',
      'counter',
      'Verifications that had to run (no cached success).',
    );
    out.push(`airlock_admission_cache_misses_total ${this.cacheMisses}`);
    family(
      out,
      'airlock_admission_verifications_total',
      'counter',
      'Verifications run (concurrent identical ones share one run).',
    );
    out.push(`airlock_admission_verifications_total ${this.verifications}`);
    family(
      out,
      'airlock_admission_tag_lookups_total',
      'counter',
      'Tag lookups sent to registries (requests that share one count once).',
    );
    out.push(`airlock_admission_tag_lookups_total ${this.tagLookups}`);
    family(
      out,
      'airlock_admission_registry_errors_total',
      'counter',
      'Registry requests that failed, by registry host.',
    );
    for (const [host, n] of this.registryErrors)
      out.push(`airlock_admission_registry_errors_total${labels({ host })} ${n}`);
    family(
      out,
      'airlock_admission_rejected_requests_total',
      'counter',
      'Requests refused before a decision, by error code.',
    );
    for (const [code, n] of this.rejected)
      out.push(`airlock_admission_rejected_requests_total${labels({ code })} ${n}`);
    family(out, 'airlock_admission_tls_reloads_total', 'counter', 'Certificate/key reloads, by result.');
    for (const [result, n] of this.tlsReloads)
      out.push(`airlock_admission_tls_reloads_total${labels({ result })} ${n}`);
    return `${out.join('\n')}\n`;
  }
}

function bump<K>(map: Map<K, number>, key: K): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

function family(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

/** Label values escaped as the exposition format requires (backslash, quote, newline). */
function labels(values: Record<string, string | undefined>): string {
  const parts = Object.entries(values).map(
    ([k, v]) => `${k}="${(v ?? '').replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
  );
  return `{${parts.join(',')}}`;
}
