import type { AdmissionRequest, AdmissionResponse } from '../types.js';
import type { ImageVerdict } from './decide.js';

/**
 * Audit annotation keys. The API server prefixes each with the webhook's name (a key with a `/` of its own would
 * be refused), so with the webhook named `images.airlock.dev` they appear as `images.airlock.dev/verdict`, ….
 */
export const AUDIT_KEYS = { verdict: 'verdict', policy: 'policy', digest: 'digest', reason: 'reason' } as const;

/** Kubernetes may truncate warnings over 256 characters; keep each one readable at 120. */
const MAX_WARNING = 120;
const MAX_WARNINGS = 20;
const MAX_MESSAGE = 4000;

export type Verdict = 'allow' | 'deny' | 'warn' | 'skip' | 'dry-run';

/** A response admitting without verification (DELETE, CONNECT, status, scale). */
export function skipped(request: AdmissionRequest, why: string): AdmissionResponse {
  return {
    uid: request.uid,
    allowed: true,
    auditAnnotations: { [AUDIT_KEYS.verdict]: 'skip', [AUDIT_KEYS.reason]: clip(why, 256) },
  };
}

/** A deny for a request airlock cannot read (shape, kind): fail closed, saying what was wrong. */
export function refused(request: { uid: string }, message: string, code = 400): AdmissionResponse {
  return {
    uid: request.uid,
    allowed: false,
    status: { code, message: clip(message, MAX_MESSAGE), reason: code === 400 ? 'BadRequest' : 'Forbidden' },
    auditAnnotations: { [AUDIT_KEYS.verdict]: 'deny', [AUDIT_KEYS.reason]: clip(message, 256) },
  };
}

/**
 * The response for a checked object. Denied when an image to check is denied (unless dryRun: then allowed, with
 * the verdict in warnings). warn-mode failures and tag resolutions become warnings. With `patch`, every resolved
 * image is pinned to repo@sha256 in a JSONPatch (only when allowed).
 */
export function respond(request: AdmissionRequest, images: ImageVerdict[], mutate: boolean): AdmissionResponse {
  const checked = images.filter((i) => i.at.some((a) => a.check));
  const denied = checked.filter((i) => i.outcome === 'deny');
  const warned = checked.filter((i) => i.outcome === 'warn');
  const dryRun = request.dryRun === true;
  const verdict: Verdict = denied.length > 0 ? (dryRun ? 'dry-run' : 'deny') : warned.length > 0 ? 'warn' : 'allow';
  const warnings = [
    ...(dryRun && denied.length > 0 ? denied.map((i) => `dry run, would deny: ${i.reason}`) : []),
    ...warned.map((i) => i.reason),
    ...images.filter((i) => i.resolved?.fromTag !== undefined && i.outcome !== 'deny').map(tagWarning),
  ];
  const response: AdmissionResponse = {
    uid: request.uid,
    allowed: denied.length === 0 || dryRun,
    auditAnnotations: annotations(images, verdict),
  };
  if (denied.length > 0 && !dryRun)
    response.status = {
      code: 403,
      reason: 'Forbidden',
      message: clip(denied.map((i) => i.reason).join('\n'), MAX_MESSAGE),
    };
  if (warnings.length > 0) response.warnings = warnings.slice(0, MAX_WARNINGS).map((w) => clip(w, MAX_WARNING));
  if (mutate && response.allowed) {
    const patch = pinPatch(images);
    if (patch.length > 0) {
      response.patchType = 'JSONPatch';
      response.patch = Buffer.from(JSON.stringify(patch), 'utf8').toString('base64');
    }
  }
  return response;
}

/** A tag is resolved once and the digest is what was verified: say so, with the full digest (within 120 characters). */
function tagWarning(i: ImageVerdict): string {
  const r = i.resolved!;
  const name = r.repository.slice(r.repository.lastIndexOf('/') + 1);
  return `${name}:${r.fromTag} verified as ${r.digest}`;
}

/** `replace` of each image string whose reference is not already `host/repo@digest` exactly. */
export function pinPatch(images: ImageVerdict[]): { op: 'replace'; path: string; value: string }[] {
  const ops: { op: 'replace'; path: string; value: string }[] = [];
  for (const i of images) {
    if (!i.resolved || i.image === i.resolved.pinned) continue;
    for (const a of i.at) ops.push({ op: 'replace', path: a.pointer, value: i.resolved.pinned });
  }
  return ops;
}

function annotations(images: ImageVerdict[], verdict: Verdict): Record<string, string> {
  const policies = [...new Set(images.flatMap((i) => i.policies.map((p) => p.policy)))];
  const digests = images.filter((i) => i.resolved).map((i) => `${i.image}=${i.resolved!.digest}`);
  const out: Record<string, string> = { [AUDIT_KEYS.verdict]: verdict };
  out[AUDIT_KEYS.policy] = clip(policies.join(',') || '(none)', 1024);
  out[AUDIT_KEYS.digest] = clip(digests.join(',') || '(none)', 4096);
  const reasons = images.filter((i) => i.outcome !== 'allow').map((i) => i.reason);
  if (reasons.length > 0) out[AUDIT_KEYS.reason] = clip(reasons.join('; '), 1024);
  return out;
}

function clip(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}
