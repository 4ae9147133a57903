import type { AdmissionRequest, AdmissionResponse, AdmissionReview, WorkspaceRequest } from '../types.js';
import { AdmissionServerError } from './errors.js';

/**
 * The AdmissionReview envelope: what the server checks before the controller sees a request, and the one place
 * responses are shaped, so every answer echoes request.uid, carries audit annotations and never allows by accident.
 */

export const API_VERSION = 'admission.k8s.io/v1';
const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);
/** Kubernetes UIDs are 36-character UUIDs; anything far longer is not from an API server. */
const MAX_UID = 256;
/** The API server may truncate warnings over 120 characters (admission.k8s.io/v1 docs). */
const MAX_WARNING = 120;
const MAX_WARNINGS = 32;

/** A parsed envelope: either a request the controller may decide, or a uid-bearing request the server denies. */
export type Envelope = { ok: true; request: AdmissionRequest } | { ok: false; uid: string; reason: string };

const bad = (message: string): AdmissionServerError => new AdmissionServerError('ADMISSION_BAD_REQUEST', message);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks apiVersion, kind and request.uid (missing → throws ADMISSION_BAD_REQUEST, answered 400). With a uid, a
 * request whose other fields are malformed is answered with a deny rather than a 400, so the API server logs why.
 */
export function parseEnvelope(body: unknown): Envelope {
  if (!isObject(body)) throw bad('the body is not a JSON object (expected an AdmissionReview)');
  if (body.apiVersion !== API_VERSION) throw bad(`apiVersion must be ${API_VERSION}, got ${describe(body.apiVersion)}`);
  if (body.kind !== 'AdmissionReview') throw bad(`kind must be AdmissionReview, got ${describe(body.kind)}`);
  const request = body.request;
  if (!isObject(request)) throw bad('AdmissionReview has no request object');
  const uid = request.uid;
  if (typeof uid !== 'string' || uid === '') throw bad('AdmissionReview request.uid is missing');
  if (uid.length > MAX_UID) throw bad(`request.uid is ${uid.length} characters (at most ${MAX_UID})`);
  const problem = requestProblem(request);
  return problem ? { ok: false, uid, reason: problem } : { ok: true, request: request as unknown as AdmissionRequest };
}

function requestProblem(r: Record<string, unknown>): string | undefined {
  if (!isGvk(r.kind)) return 'request.kind must be {group, version, kind} strings';
  if (!isObject(r.resource) || typeof r.resource.resource !== 'string')
    return 'request.resource must be {group, version, resource}';
  if (typeof r.operation !== 'string' || !OPERATIONS.has(r.operation))
    return `request.operation must be one of CREATE, UPDATE, DELETE, CONNECT, got ${describe(r.operation)}`;
  if (r.subResource !== undefined && typeof r.subResource !== 'string') return 'request.subResource must be a string';
  if (r.namespace !== undefined && typeof r.namespace !== 'string') return 'request.namespace must be a string';
  if (r.dryRun !== undefined && typeof r.dryRun !== 'boolean') return 'request.dryRun must be a boolean';
  return undefined;
}

function isGvk(v: unknown): boolean {
  return isObject(v) && typeof v.group === 'string' && typeof v.version === 'string' && typeof v.kind === 'string';
}

/** A short, quoted description of an unexpected value (never the whole value: it may be huge). */
function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  const text = typeof v === 'string' ? JSON.stringify(v) : typeof v;
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** The deny every failure path uses: HTTP 200, `allowed: false`, a message and the verdict annotations. */
export function denyResponse(
  uid: string,
  message: string,
  reason: string,
  extra: Record<string, string> = {},
): AdmissionResponse {
  return {
    uid,
    allowed: false,
    status: { code: 403, reason: 'Forbidden', message },
    auditAnnotations: { verdict: 'deny', reason, ...extra },
  };
}

/**
 * Makes a controller's answer safe to send: the uid is the request's (a mismatch is an internal error → deny),
 * `allowed` is true only if the controller said exactly `true`, a validating answer never carries a patch, a deny
 * has a message, warnings are bounded, and audit annotations are always present.
 */
export function sanitizeResponse(
  request: AdmissionRequest,
  response: unknown,
  mutate: boolean,
): { response: AdmissionResponse; internalError: boolean } {
  const uid = request.uid;
  if (!isObject(response))
    return {
      response: denyResponse(uid, 'airlock: internal error: the controller gave no answer', 'internal'),
      internalError: true,
    };
  if (response.uid !== uid)
    return {
      response: denyResponse(uid, 'airlock: internal error: the controller answered for another request', 'internal'),
      internalError: true,
    };
  const allowed = response.allowed === true;
  const out: AdmissionResponse = { uid, allowed };
  const status = isObject(response.status) ? response.status : undefined;
  if (!allowed) {
    const message = typeof status?.message === 'string' && status.message !== '' ? status.message : 'airlock: denied';
    out.status = {
      code: typeof status?.code === 'number' ? status.code : 403,
      reason: typeof status?.reason === 'string' ? status.reason : 'Forbidden',
      message,
    };
  } else if (status) out.status = status as AdmissionResponse['status'];
  const warnings = Array.isArray(response.warnings)
    ? response.warnings
        .filter((w): w is string => typeof w === 'string')
        .slice(0, MAX_WARNINGS)
        .map(boundWarning)
    : [];
  if (warnings.length > 0) out.warnings = warnings;
  if (mutate && allowed && typeof response.patch === 'string' && response.patch !== '') {
    out.patchType = 'JSONPatch';
    out.patch = response.patch;
  }
  const annotations = isObject(response.auditAnnotations) ? stringValues(response.auditAnnotations) : {};
  // The controller may refine the verdict (skip, dry-run) but never contradict `allowed` in the audit log.
  const claimed = annotations.verdict;
  const verdict = !allowed
    ? 'deny'
    : claimed !== undefined && claimed !== 'deny'
      ? claimed
      : warnings.length > 0
        ? 'warn'
        : 'allow';
  out.auditAnnotations = { ...annotations, verdict };
  return { response: out, internalError: false };
}

function boundWarning(w: string): string {
  return w.length > MAX_WARNING ? `${w.slice(0, MAX_WARNING - 3)}...` : w;
}

function stringValues(o: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(o).filter((e): e is [string, string] => typeof e[1] === 'string'));
}

export function review(response: AdmissionResponse): AdmissionReview {
  return { apiVersion: API_VERSION, kind: 'AdmissionReview', response };
}

/** POST /workspace body: `{image, toolchains?: [{path, bundles?}]}`. */
export function parseWorkspaceRequest(body: unknown): WorkspaceRequest {
  if (!isObject(body)) throw bad('the body is not a JSON object (expected {"image": "..."})');
  if (typeof body.image !== 'string' || body.image === '') throw bad('"image" must be a non-empty string');
  if (body.toolchains === undefined) return { image: body.image };
  if (!Array.isArray(body.toolchains)) throw bad('"toolchains" must be an array of {path, bundles?}');
  const toolchains = body.toolchains.map((t: unknown, i) => {
    if (!isObject(t) || typeof t.path !== 'string' || t.path === '')
      throw bad(`toolchains[${i}].path must be a non-empty string`);
    if (t.bundles === undefined) return { path: t.path };
    if (!Array.isArray(t.bundles) || !t.bundles.every((b) => typeof b === 'string' && b !== ''))
      throw bad(`toolchains[${i}].bundles must be an array of paths`);
    return { path: t.path, bundles: t.bundles as string[] };
  });
  return { image: body.image, toolchains };
}
