import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { dirname, isAbsolute, resolve } from 'node:path';
import { RegistryClient, type ReferrersHint } from '@airlock/oci';
import { parseDocument } from 'yaml';
import { AdmissionError } from '../errors.js';
import { isRecord } from '../review/images.js';
import { CachingRegistryClient, ImmutableReads } from './immutable.js';

/** How to reach one registry host (operator configuration). */
export interface RegistryHost {
  /** `host[:port]` as in image references. */
  host: string;
  /** Plain HTTP (loopback or lab registries); default https. */
  plainHttp: boolean;
  /** PEM CA bundle for the registry's TLS (replaces the system store). */
  ca?: string;
  /** Basic credentials (also sent to the token realm of a bearer-token registry). */
  auth?: { username: string; password: string };
}

/**
 * The registries the controller may contact: only hosts listed here. An image reference is attacker input; it
 * chooses among these hosts and can never make the webhook connect anywhere else.
 */
export class Registries {
  private readonly hosts: ReadonlyMap<string, RegistryHost>;
  /** Bearer tokens per host, shared by every client of that host. */
  private readonly tokens = new Map<string, Map<string, string>>();
  /**
   * One keep-alive agent per host: a tag lookup reuses a warm connection instead of a TCP (+TLS) handshake. The
   * socket count is bounded; requests beyond it queue in the agent (the request deadline still applies).
   */
  private readonly agents = new Map<string, HttpAgent>();
  /**
   * Tag lookups' own keep-alive sockets per host: a tag HEAD is on every by-tag request's critical path and must
   * never wait in the agent's queue behind a burst of verification reads (manifests, referrers, blobs).
   */
  private readonly tagAgents = new Map<string, HttpAgent>();
  /** Per host: whether its referrers API answered 404 last time (the fallback index is then read alongside it). */
  private readonly referrersHints = new Map<string, ReferrersHint>();

  /** Idle socket timeout per registry request (default 5 s); the request's AbortSignal is the real deadline. */
  private readonly timeoutMs: number;
  /** By-digest manifest and blob reads kept in memory (registry/immutable.ts), when configured. */
  readonly immutableReads: ImmutableReads | undefined;

  constructor(hosts: readonly RegistryHost[], options: RegistriesOptions = {}) {
    this.hosts = new Map(hosts.map((h) => [h.host, h]));
    this.timeoutMs = options.timeoutMs ?? 5_000;
    this.immutableReads =
      options.immutableReadBytes !== undefined && options.immutableReadBytes > 0
        ? new ImmutableReads(options.immutableReadBytes)
        : undefined;
  }

  /** The same hosts with another idle timeout. */
  withTimeout(timeoutMs: number): Registries {
    return this.with({ timeoutMs });
  }

  /** The same hosts with other options (new connection pools; the old ones stay the caller's to close). */
  with(options: RegistriesOptions): Registries {
    return new Registries([...this.hosts.values()], {
      timeoutMs: this.timeoutMs,
      ...(this.immutableReads ? { immutableReadBytes: this.immutableReads.maxBytes } : {}),
      ...options,
    });
  }

  has(host: string): boolean {
    return this.hosts.has(host);
  }

  list(): string[] {
    return [...this.hosts.keys()];
  }

  /** Throws ADMISSION_REGISTRY_NOT_CONFIGURED unless `host` is configured. */
  assertConfigured(host: string): RegistryHost {
    const h = this.hosts.get(host);
    if (!h)
      throw new AdmissionError(
        'ADMISSION_REGISTRY_NOT_CONFIGURED',
        `registry ${host} is not one the admission controller is configured to use`,
      );
    return h;
  }

  /** A client for `host` bound to `signal` (clients are cheap; connections are pooled per host). */
  client(host: string, signal?: AbortSignal): RegistryClient {
    return this.clientOn(host, this.agents, MAX_SOCKETS_PER_HOST, signal);
  }

  /** A client for `host` for tag lookups only: the same host settings on a pool of its own (see tagAgents). */
  tagClient(host: string, signal?: AbortSignal): RegistryClient {
    return this.clientOn(host, this.tagAgents, MAX_TAG_SOCKETS_PER_HOST, signal);
  }

  private clientOn(
    host: string,
    pool: Map<string, HttpAgent>,
    maxSockets: number,
    signal: AbortSignal | undefined,
  ): RegistryClient {
    const h = this.assertConfigured(host);
    let tokens = this.tokens.get(host);
    if (!tokens) this.tokens.set(host, (tokens = new Map()));
    const options = {
      url: `${h.plainHttp ? 'http' : 'https'}://${h.host}`,
      ...(h.ca !== undefined ? { ca: h.ca } : {}),
      ...(h.auth ? { auth: h.auth } : {}),
      ...(signal ? { signal } : {}),
      tokens,
      agent: this.agent(h, pool, maxSockets),
      referrersHint: this.referrersHint(host),
      timeoutMs: this.timeoutMs,
      userAgent: 'airlock-admission/0.1',
    };
    return this.immutableReads ? new CachingRegistryClient(options, this.immutableReads) : new RegistryClient(options);
  }

  private referrersHint(host: string): ReferrersHint {
    let hint = this.referrersHints.get(host);
    if (!hint) this.referrersHints.set(host, (hint = { apiAbsent: false }));
    return hint;
  }

  /** Closes every pooled connection (the server is stopping). */
  close(): void {
    for (const pool of [this.agents, this.tagAgents]) {
      for (const a of pool.values()) a.destroy();
      pool.clear();
    }
  }

  private agent(h: RegistryHost, pool: Map<string, HttpAgent>, maxSockets: number): HttpAgent {
    let agent = pool.get(h.host);
    if (!agent) {
      // Idle sockets are closed after 4 s, below the common 5 s+ server idle timeouts, so reuse rarely races a close.
      const options = {
        keepAlive: true,
        maxSockets,
        // As many idle as open: a burst of concurrent reads must not close sockets the next burst reopens.
        maxFreeSockets: maxSockets,
        timeout: 4_000,
      };
      agent = h.plainHttp
        ? new HttpAgent(options)
        : new HttpsAgent({ ...options, ...(h.ca !== undefined ? { ca: h.ca } : {}) });
      pool.set(h.host, agent);
    }
    return agent;
  }
}

export interface RegistriesOptions {
  /** Idle socket timeout per registry request (default 5 s). */
  timeoutMs?: number;
  /** Keep by-digest manifest and blob reads in memory, up to this many bytes (default: off). */
  immutableReadBytes?: number;
}

/** Connections per registry host (a bound on what a burst of admissions can open). */
const MAX_SOCKETS_PER_HOST = 16;
/**
 * Tag-lookup connections per host, besides those: shared lookups keep at most one HEAD per tag in flight, so a few
 * sockets carry every tag of a burst.
 */
const MAX_TAG_SOCKETS_PER_HOST = 8;

/** The registries file: `registries: { "<host[:port]>": { plainHttp?, caFile?, username?, passwordFile? } }`. */
interface RegistriesFile {
  registries: Record<string, { plainHttp?: boolean; caFile?: string; username?: string; passwordFile?: string }>;
}

/**
 * Reads the operator's registries file (YAML/JSON) and, optionally, a Kubernetes dockerconfigjson file
 * (`{"auths": {"host": {"auth": base64(user:pass)} | {"username", "password"}}}`) whose credentials apply to the
 * hosts the registries file lists (a host only in dockerconfigjson is added with https). Errors name the file and
 * field, never a secret.
 */
export function loadRegistries(options: {
  file?: string;
  dockerConfigJson?: string;
  /** PEM CA bundle for every https registry whose entry names no caFile of its own (`--registry-ca`). */
  defaultCaFile?: string;
}): Registries {
  const hosts = new Map<string, RegistryHost>();
  if (options.file !== undefined) for (const h of readRegistriesFile(options.file)) hosts.set(h.host, h);
  if (options.dockerConfigJson !== undefined)
    for (const [host, auth] of readDockerConfig(options.dockerConfigJson)) {
      const h = hosts.get(host) ?? { host, plainHttp: false };
      if (!h.auth) hosts.set(host, { ...h, auth });
    }
  if (options.defaultCaFile !== undefined) {
    const ca = readText(options.defaultCaFile, 'registry CA file');
    if (!ca.includes('-----BEGIN CERTIFICATE-----'))
      throw configError(`registry CA file ${options.defaultCaFile}: no PEM certificate in it`);
    for (const h of hosts.values()) if (!h.plainHttp && h.ca === undefined) hosts.set(h.host, { ...h, ca });
  }
  return new Registries([...hosts.values()]);
}

function configError(msg: string, cause?: unknown): AdmissionError {
  return new AdmissionError('ADMISSION_CONFIG_INVALID', msg, cause === undefined ? {} : { cause });
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw configError(`cannot read ${what} ${path}: ${(cause as Error).message}`, cause);
  }
}

const HOST_RE = /^[A-Za-z0-9.-]+(?::[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?$/;
const ENTRY_KEYS = new Set(['plainHttp', 'caFile', 'username', 'passwordFile']);

function readRegistriesFile(file: string): RegistryHost[] {
  const doc = parseDocument(readText(file, 'registries file'), { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) throw configError(`${file}: not valid YAML or JSON: ${doc.errors[0]!.message}`);
  const value = doc.toJS({ maxAliasCount: 10 }) as unknown;
  if (!isRecord(value) || !isRecord(value['registries']) || Object.keys(value).length !== 1)
    throw configError(`${file}: must be an object with exactly one field, registries (an object keyed by host)`);
  const base = dirname(resolve(file));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  return Object.entries((value as unknown as RegistriesFile).registries).map(([host, e]) => {
    const at = `${file}: registries.${host}`;
    if (!HOST_RE.test(host)) throw configError(`${at}: not a host[:port]`);
    if (!isRecord(e)) throw configError(`${at}: must be an object`);
    for (const k of Object.keys(e)) if (!ENTRY_KEYS.has(k)) throw configError(`${at}.${k}: unknown field`);
    if (e.plainHttp !== undefined && typeof e.plainHttp !== 'boolean')
      throw configError(`${at}.plainHttp: must be boolean`);
    for (const k of ['caFile', 'username', 'passwordFile'] as const)
      if (e[k] !== undefined && (typeof e[k] !== 'string' || e[k] === ''))
        throw configError(`${at}.${k}: must be a non-empty string`);
    if ((e.username === undefined) !== (e.passwordFile === undefined))
      throw configError(`${at}: username and passwordFile go together`);
    return {
      host,
      plainHttp: e.plainHttp === true,
      ...(e.caFile !== undefined ? { ca: readText(abs(e.caFile), `CA file for ${host}`) } : {}),
      ...(e.username !== undefined
        ? {
            auth: {
              username: e.username,
              password: readText(abs(e.passwordFile!), `password file for ${host}`).trim(),
            },
          }
        : {}),
    };
  });
}

function readDockerConfig(file: string): Map<string, { username: string; password: string }> {
  let value: unknown;
  try {
    value = JSON.parse(readText(file, 'dockerconfigjson file'));
  } catch (cause) {
    if (cause instanceof AdmissionError) throw cause;
    throw configError(`${file}: not JSON`, cause);
  }
  const auths = isRecord(value) ? value['auths'] : undefined;
  if (!isRecord(auths)) throw configError(`${file}: auths must be an object keyed by registry host`);
  const out = new Map<string, { username: string; password: string }>();
  for (const [key, entry] of Object.entries(auths)) {
    const host = key.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    const at = `${file}: auths.${host}`;
    if (!HOST_RE.test(host)) throw configError(`${at}: not a host[:port]`);
    if (!isRecord(entry)) throw configError(`${at}: must be an object`);
    out.set(host, dockerAuth(entry, at));
  }
  return out;
}

function dockerAuth(entry: Record<string, unknown>, at: string): { username: string; password: string } {
  if (typeof entry['username'] === 'string' && typeof entry['password'] === 'string')
    return { username: entry['username'], password: entry['password'] };
  if (typeof entry['auth'] === 'string') {
    const text = Buffer.from(entry['auth'], 'base64').toString('utf8');
    const colon = text.indexOf(':');
    if (colon > 0) return { username: text.slice(0, colon), password: text.slice(colon + 1) };
  }
  throw configError(`${at}: needs auth (base64 of user:password) or username and password`);
}
