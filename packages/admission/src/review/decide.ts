import { isSha256Digest } from '@airlock/oci';
import { sharedSignal } from '../abort.js';
import type { AdmissionError } from '../errors.js';
import type { LoadedAdmissionPolicy } from '../policy/load.js';
import { matchingPolicies, matchNameOf } from '../policy/match.js';
import type { Registries } from '../registry/config.js';
import type { AdmissionEvents } from '../types.js';
import { checkDigest, type CheckContext } from '../verify/check.js';
import type { FoundImage } from './images.js';
import {
  isUnchecked,
  parseReference,
  registryFailure,
  resolveImage,
  short,
  type ResolvedImage,
  type TagLookup,
} from './resolve.js';

/** One image policy's verdict for one image in one request (mode applied). */
export interface PolicyVerdict {
  policy: string;
  mode: 'enforce' | 'warn';
  passed: boolean;
  reason: string;
  cached: boolean;
  /** The policy could not be checked (registry down or failing, deadline), as opposed to a failed check. */
  unchecked?: boolean;
}

/** Everything decided about one image string of the object. */
export interface ImageVerdict {
  image: string;
  /** Where it occurs (several pointers when the same string is used by several containers). */
  at: FoundImage[];
  resolved?: ResolvedImage;
  policies: PolicyVerdict[];
  /** allow: every policy passed (or unmatched allowed); warn: only warn-mode policies failed; deny. */
  outcome: 'allow' | 'warn' | 'deny';
  /** One line naming the image and why. */
  reason: string;
  /** Denied because it could not be checked (registry unreachable, deadline): the workspace check's exit 3. */
  unchecked?: boolean;
}

export interface ImageCheckDeps {
  policy: LoadedAdmissionPolicy;
  registries: Registries;
  /** Tag → digest for this request (shared lookups sent after it arrived). */
  lookup: TagLookup;
  /** What the tag last resolved to, however long ago: only which digest to start verifying early (a guess). */
  tagHint?: (registry: string, repository: string, tag: string) => string | undefined;
  check: CheckContext;
  events: AdmissionEvents;
}

/**
 * Decides one image: matching policies (namespace and globs evaluated now, never cached), tag → digest, then each
 * policy's verification for that digest. Any error denies the image with a message naming it; nothing here
 * throws.
 */
export async function decideImage(
  image: string,
  at: FoundImage[],
  namespace: string | undefined,
  deps: ImageCheckDeps,
  signal: AbortSignal,
): Promise<ImageVerdict> {
  const base = { image, at, policies: [] as PolicyVerdict[] };
  let name: string;
  let ref: ReturnType<typeof parseReference>;
  try {
    ref = parseReference(image);
    name = matchNameOf(ref);
  } catch (err) {
    return { ...base, outcome: 'deny', reason: (err as Error).message };
  }
  const matched = matchingPolicies(deps.policy, name, namespace);
  if (matched.length === 0) return unmatched(base, name, deps, signal, ref);
  // Verifying the digest the tag last had starts now, while the fresh lookup runs; used only if the tag still has it.
  const early = speculate(ref, matched, deps, signal);
  let resolved: ResolvedImage;
  try {
    resolved = await resolveImage(image, deps.registries, signal, deps.lookup, ref);
  } catch (err) {
    early?.abort();
    reportRegistryError(err, name, deps);
    return { ...base, outcome: 'deny', reason: `${short(image)}: ${(err as Error).message}`, ...unchecked(err) };
  }
  let checked: Checked;
  if (early !== undefined && early.digest === resolved.digest) checked = await early.run;
  else {
    early?.abort();
    checked = await verifyPolicies(targetOf(resolved), matched, deps, signal);
  }
  for (const e of checked.errors) reportRegistryError(e, name, deps);
  const policies = checked.verdicts;
  return { ...base, resolved, policies, ...summarise(image, resolved, policies) };
}

type Matched = ReturnType<typeof matchingPolicies>;
type Target = Parameters<typeof checkDigest>[0];

/** Every matched policy's verdict for one digest; never throws (errors are verdicts, reported by the caller). */
interface Checked {
  verdicts: PolicyVerdict[];
  errors: AdmissionError[];
}

function targetOf(resolved: ResolvedImage): Target {
  const { pinned: reference, registry, repository, digest } = resolved;
  return { reference, registry, repository, digest };
}

async function verifyPolicies(
  target: Target,
  matched: Matched,
  deps: ImageCheckDeps,
  signal: AbortSignal,
): Promise<Checked> {
  const errors: AdmissionError[] = [];
  const verdicts = await Promise.all(
    matched.map(async (p): Promise<PolicyVerdict> => {
      try {
        const o = await checkDigest(target, p, deps.check, signal);
        return { policy: p.name, mode: p.mode, passed: o.passed, reason: o.reason, cached: o.cached };
      } catch (err) {
        // The summary names the image already: the reason does not repeat it.
        const e = registryFailure('', err, signal);
        errors.push(e);
        return { policy: p.name, mode: p.mode, passed: false, reason: e.message, cached: false, ...unchecked(e) };
      }
    }),
  );
  return { verdicts, errors };
}

/**
 * The verification of the digest a tag last resolved to (deps.tagHint), started before the fresh lookup answers.
 * It reads everything live like any other; it is the verdict only when the fresh lookup names the same digest (the
 * digest is what is verified, not the tag), else it is aborted (shared verifications stop once nobody waits).
 */
function speculate(
  ref: ReturnType<typeof parseReference>,
  matched: Matched,
  deps: ImageCheckDeps,
  signal: AbortSignal,
): { digest: string; run: Promise<Checked>; abort: () => void } | undefined {
  const { registry, repository } = ref;
  if (ref.digest !== undefined || registry === undefined || deps.tagHint === undefined) return undefined;
  if (!deps.registries.has(registry)) return undefined;
  const digest = deps.tagHint(registry, repository, ref.tag ?? 'latest');
  if (digest === undefined || !isSha256Digest(digest)) return undefined;
  const controller = new AbortController();
  const reference = `${registry}/${repository}@${digest}`;
  const target = { reference, registry, repository, digest };
  const run = verifyPolicies(target, matched, deps, sharedSignal(AbortSignal.any([signal, controller.signal])));
  return { digest, run, abort: () => controller.abort() };
}

async function unmatched(
  base: { image: string; at: FoundImage[]; policies: PolicyVerdict[] },
  name: string,
  deps: ImageCheckDeps,
  signal: AbortSignal,
  ref: ReturnType<typeof parseReference>,
): Promise<ImageVerdict> {
  if (deps.policy.unmatched === 'deny')
    return {
      ...base,
      outcome: 'deny',
      reason: `${short(base.image)}: no admission policy matches ${name} (unmatched: deny)`,
    };
  const reason = `${short(base.image)}: no admission policy matches; allowed (unmatched: allow)`;
  const host = name.slice(0, name.indexOf('/'));
  if (!deps.registries.has(host)) return { ...base, outcome: 'allow', reason };
  try {
    // Pinned all the same, so the tag cannot move under it after admission.
    return {
      ...base,
      resolved: await resolveImage(base.image, deps.registries, signal, deps.lookup, ref),
      outcome: 'allow',
      reason,
    };
  } catch (err) {
    reportRegistryError(err, name, deps);
    return { ...base, outcome: 'deny', reason: `${short(base.image)}: ${(err as Error).message}`, ...unchecked(err) };
  }
}

const unchecked = (err: unknown): { unchecked?: true } => (isUnchecked(err) ? { unchecked: true } : {});

function summarise(
  image: string,
  resolved: ResolvedImage,
  policies: PolicyVerdict[],
): { outcome: ImageVerdict['outcome']; reason: string; unchecked?: boolean } {
  const what =
    resolved.fromTag !== undefined ? `${short(image)} (tag ${resolved.fromTag} = ${resolved.digest})` : short(image);
  const enforced = policies.filter((p) => !p.passed && p.mode === 'enforce');
  const warned = policies.filter((p) => !p.passed && p.mode === 'warn');
  const names = (ps: PolicyVerdict[]): string => ps.map((p) => `policy ${p.policy}: ${p.reason}`).join('; ');
  if (enforced.length > 0)
    return {
      outcome: 'deny',
      reason: `${what} denied by ${names(enforced)}`,
      ...(enforced.some((p) => p.unchecked) ? { unchecked: true } : {}),
    };
  if (warned.length > 0) return { outcome: 'warn', reason: `${what} fails (warn mode) ${names(warned)}` };
  return {
    outcome: 'allow',
    reason: `${what} verified by ${policies.map((p) => `policy ${p.policy} (${p.reason})`).join(', ')}`,
  };
}

function reportRegistryError(err: unknown, name: string, deps: ImageCheckDeps): void {
  const code = (err as { code?: string }).code;
  if (code === 'ADMISSION_REGISTRY_UNAVAILABLE' || code === 'ADMISSION_DEADLINE')
    deps.events.registryError(name.slice(0, name.indexOf('/')));
}
