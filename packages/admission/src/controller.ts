import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { AdmissionError } from './errors.js';
import { loadAdmissionPolicyFile, type LoadedAdmissionPolicy } from './policy/load.js';
import { loadRegistries, Registries } from './registry/config.js';
import { FreshLookups, type Ticket } from './registry/lookups.js';
import { decideImage, type ImageCheckDeps, type ImageVerdict } from './review/decide.js';
import { findImages, type FoundImage } from './review/images.js';
import { readableKind, requestProblem, skipReason } from './review/request.js';
import { refused, respond, skipped } from './review/respond.js';
import type {
  AdmissionController,
  AdmissionEvents,
  AdmissionRequest,
  AdmissionResponse,
  DecideOptions,
  WorkspaceRequest,
  WorkspaceVerdict,
} from './types.js';
import { EngineImageVerifier } from './verify/engine.js';
import { VerificationCache } from './verify/cache.js';
import type { PolicyOutcome } from './verify/check.js';
import { TrustStore } from './verify/trust.js';
import type { ImageVerifier } from './verify/types.js';
import { checkToolchain } from './workspace/toolchains.js';

/** Operator configuration of the controller (flags and files; nothing in a request can change it). */
export interface AdmissionControllerConfig {
  /** The admission policy file (schemas/admission-policy.v1.schema.json). */
  policyFile: string;
  /** Sigstore TrustedRoot JSON files; signatures are verified offline against them. */
  trustedRoots: string[];
  /** Mirror snapshot directories (manifest.json + attestations/manifest.sigstore.json) for dependency rules. */
  snapshots?: string[];
  /** Registries the controller may contact: a registries file and/or a Kubernetes dockerconfigjson file. */
  registries?: { file?: string; dockerConfigJson?: string; defaultCaFile?: string } | Registries;
  /** Cache of successful verifications (default 10 min, 10 000 entries); false turns it off. */
  cache?: { ttlMs?: number; maxEntries?: number } | false;
  /**
   * Keep registry reads by digest (manifests, blobs: immutable, checked against their digest) in memory, so a
   * re-verification (cache expiry, policy or root change) does not fetch them again. Tags, referrers and the
   * fallback index are always read live. Default: 64 MiB, or off when `cache` is false ("nothing cached").
   */
  immutableReads?: { maxBytes: number } | false;
  /**
   * How old a tag → digest answer a request may receive (`admission serve --tag-ttl`). Default 0: every request
   * resolves its tags with a lookup sent after it arrived. With N > 0 a digest looked up less than N ms before the
   * request arrived is reused (tags only; errors and absent tags never), and renewed in the background once older
   * than N/2 so steady traffic does not wait for the registry. What runs is still what was verified:
   * /mutate pins that digest. Dropped when the policy or trusted root changes.
   */
  tags?: { ttlMs: number; maxEntries?: number; now?: () => number };
  /**
   * cosign `.sig`/`.att` layers of an image (`admission serve --cosign-layers`): `always` read and cross-checked
   * (default, as `airlock verify image`); `when-needed` read only when the image's Sigstore bundles alone do not
   * pass the policy — 2 fewer registry reads (the `.sig`/`.att` manifests) and one bundle verification less per
   * signed image, but a stray `.att` or an unbacked `.sig` beside bundles that pass no longer denies.
   */
  cosignLayers?: 'always' | 'when-needed';
  /** Image verification (default: @airlock/policy's verifyImageByPolicy). */
  verifier?: ImageVerifier;
  events?: AdmissionEvents;
  /** Watch the policy and trust files and drop the cache when they change (default true). */
  watch?: boolean;
}

interface State {
  policy: LoadedAdmissionPolicy;
  trust: TrustStore;
}

const DEFAULT_IMMUTABLE_BYTES = 64 * 1024 * 1024;

const NO_EVENTS: AdmissionEvents = { cache: () => undefined, registryError: () => undefined };

/** The controller behind /validate, /mutate, /workspace and /readyz. Throws for unusable configuration. */
export function createAdmissionController(config: AdmissionControllerConfig): AdmissionController & {
  reload(): boolean;
  readonly cacheSize: number;
  readonly tagLookupsSent: number;
} {
  return new Controller(config);
}

class Controller implements AdmissionController {
  private state: State;
  private readonly registries: Registries;
  private readonly cache: VerificationCache<PolicyOutcome>;
  /** Tag → digest lookups shared by requests, never one sent before a request arrived (or, with a TTL, within it). */
  private readonly tags: FreshLookups<string | undefined>;
  private readonly verifier: ImageVerifier;
  private readonly events: AdmissionEvents;
  private watchers: FSWatcher[] = [];
  private reloadError: string | undefined;
  private closed = false;

  constructor(private readonly config: AdmissionControllerConfig) {
    this.state = this.load();
    const registries =
      config.registries instanceof Registries ? config.registries : loadRegistries(config.registries ?? {});
    const reads = config.immutableReads ?? (config.cache === false ? false : { maxBytes: DEFAULT_IMMUTABLE_BYTES });
    this.registries = reads === false ? registries : registries.with({ immutableReadBytes: reads.maxBytes });
    const c = config.cache === false ? { ttlMs: 0, maxEntries: 0 } : (config.cache ?? {});
    this.cache = new VerificationCache({ ttlMs: c.ttlMs ?? 600_000, maxEntries: c.maxEntries ?? 10_000 });
    this.events = config.events ?? NO_EVENTS;
    // A failed background refresh counts as a registry error of its host (key: `host/repository:tag`).
    const onRefreshError = (key: string): void => this.events.registryError(key.slice(0, key.indexOf('/')));
    this.tags = new FreshLookups({ ...(config.tags ?? {}), onRefreshError });
    this.verifier =
      config.verifier ?? new EngineImageVerifier(config.cosignLayers ? { cosignLayers: config.cosignLayers } : {});
    if (config.watch !== false) this.watchFiles();
  }

  get cacheSize(): number {
    return this.cache.size;
  }

  /** Tag lookups sent to registries so far (tests: how many requests shared one). */
  get tagLookupsSent(): number {
    return this.tags.sent;
  }

  private load(): State {
    const policy = loadAdmissionPolicyFile(this.config.policyFile);
    const trust = new TrustStore({
      trustedRoots: this.config.trustedRoots,
      ...(this.config.snapshots ? { snapshots: this.config.snapshots } : {}),
    });
    return { policy, trust };
  }

  /**
   * Re-reads the policy and trust files; when a digest changed, swaps them in and drops the cache. Returns true
   * when something changed. A file that no longer loads makes the controller not ready (the old policy is not
   * silently kept as if current).
   */
  reload(): boolean {
    let next: State;
    try {
      next = this.load();
    } catch (err) {
      this.reloadError = (err as Error).message;
      return false;
    }
    this.reloadError = undefined;
    const changed = next.policy.digest !== this.state.policy.digest || next.trust.digest !== this.state.trust.digest;
    if (changed) {
      this.state = next;
      this.cache.clear();
      this.tags.clear();
      this.rewatch();
    }
    return changed;
  }

  ready(): { ok: boolean; reason?: string } {
    if (this.closed) return { ok: false, reason: 'closed' };
    if (this.reloadError !== undefined)
      return { ok: false, reason: `policy or trusted root no longer loads: ${this.reloadError}` };
    return { ok: true };
  }

  async decide(request: AdmissionRequest, options: DecideOptions): Promise<AdmissionResponse> {
    const arrived = this.tags.arrive();
    const problem = requestProblem(request);
    if (problem) return refused({ uid: typeof request?.uid === 'string' ? request.uid : '' }, problem);
    const skip = skipReason(request);
    if (skip) return skipped(request, skip);
    const ready = this.ready();
    if (!ready.ok) return refused(request, `airlock admission is not ready: ${ready.reason}`, 503);
    const kind = readableKind(request);
    if (!kind) {
      const k = request.kind;
      return refused(
        request,
        `airlock does not read images from ${k.group || 'core'}/${k.version}/${k.kind}${request.subResource ? ` (${request.subResource})` : ''}`,
      );
    }
    let found: FoundImage[];
    try {
      found = findImages(
        kind,
        request.object,
        request.subResource === 'ephemeralcontainers' ? request.oldObject : undefined,
      );
    } catch (err) {
      return refused(request, `${kind} ${request.namespace ?? ''}/${request.name ?? ''}: ${(err as Error).message}`);
    }
    const verdicts = await this.decideAll(found, request.namespace, options.signal, arrived);
    return respond(request, verdicts, options.mutate);
  }

  private async decideAll(
    found: FoundImage[],
    namespace: string | undefined,
    signal: AbortSignal,
    arrived: Ticket,
  ): Promise<ImageVerdict[]> {
    const byImage = new Map<string, FoundImage[]>();
    for (const f of found) byImage.set(f.image, [...(byImage.get(f.image) ?? []), f]);
    const deps = this.deps(arrived);
    return Promise.all([...byImage].map(([image, at]) => decideImage(image, at, namespace, deps, signal)));
  }

  private deps(arrived: Ticket): ImageCheckDeps {
    const { policy, trust } = this.state;
    const registries = this.registries;
    return {
      policy,
      registries,
      lookup: (registry, repository, tag, signal) =>
        this.tags.run(
          `${registry}/${repository}:${tag}`,
          arrived,
          (shared) => {
            this.events.tagLookup?.();
            return registries.tagClient(registry, shared).manifestDigest(repository, tag);
          },
          signal,
        ),
      // No early verification of the last digest when a remembered answer (--tag-ttl) settles the tag at once.
      tagHint: (registry, repository, tag) => {
        const key = `${registry}/${repository}:${tag}`;
        return this.tags.answerable(key, arrived) ? undefined : this.tags.hint(key);
      },
      events: this.events,
      check: {
        verifier: this.verifier,
        registries: this.registries,
        cache: this.cache,
        trustDigest: trust.digest,
        material: (p) => trust.material(p.release),
        onCache: (hit) => this.events.cache(hit),
        onVerify: () => this.events.verification?.(),
      },
    };
  }

  async checkWorkspace(request: WorkspaceRequest, options: { signal: AbortSignal }): Promise<WorkspaceVerdict> {
    const arrived = this.tags.arrive();
    if (typeof request?.image !== 'string' || request.image === '')
      return {
        allowed: false,
        reason: 'the workspace request names no image',
        image: { reference: '', verdict: 'ERROR' },
        toolchains: [],
      };
    const [v] = await this.decideAll(
      [{ image: request.image, pointer: '', field: 'containers', name: 'workspace', check: true }],
      undefined,
      options.signal,
      arrived,
    );
    const image = workspaceImage(v!);
    const { policy, trust } = this.state;
    const toolchains = [];
    for (const tc of request.toolchains ?? [])
      toolchains.push(await checkToolchain(tc, policy.toolchains, (p) => trust.material(p)));
    const badTc = toolchains.find((t) => t.verdict !== 'PASS');
    const allowed = v!.outcome !== 'deny' && badTc === undefined;
    const reason =
      v!.outcome === 'deny'
        ? v!.reason
        : badTc
          ? `toolchain ${badTc.path}: ${badTc.reason ?? badTc.verdict}`
          : v!.reason;
    return { allowed, reason, image, toolchains };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    this.cache.clear();
    this.registries.close();
  }

  private watchFiles(): void {
    const dirs = new Set([...this.state.policy.files, ...this.state.trust.files].map((f) => dirname(f)));
    for (const d of dirs) {
      try {
        // Directories, not files: editors and ConfigMap updates replace files by rename.
        const w = watch(d, { persistent: false }, () => this.reload());
        w.on('error', () => undefined);
        this.watchers.push(w);
      } catch (cause) {
        throw new AdmissionError('ADMISSION_CONFIG_INVALID', `cannot watch ${d}: ${(cause as Error).message}`, {
          cause,
        });
      }
    }
  }

  private rewatch(): void {
    if (this.config.watch === false || this.closed) return;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    this.watchFiles();
  }
}

function workspaceImage(v: ImageVerdict): WorkspaceVerdict['image'] {
  const policy = v.policies.map((p) => p.policy).join(',');
  return {
    reference: v.image,
    ...(v.resolved ? { digest: v.resolved.digest } : {}),
    ...(policy ? { policy } : {}),
    // ERROR (exit 3) only when the image could not be checked; an unconfigured registry is a refusal (FAIL).
    verdict: v.outcome === 'deny' ? (v.unchecked ? 'ERROR' : 'FAIL') : 'PASS',
  };
}
