import type { AdmissionRequest } from '../types.js';
import { isRecord, isSupportedKind } from './images.js';

/** Why a request is admitted without verification, or undefined when its images must be checked. */
export function skipReason(request: AdmissionRequest): string | undefined {
  if (request.operation === 'DELETE' || request.operation === 'CONNECT')
    return `${request.operation} does not start containers`;
  const sub = request.subResource ?? '';
  if (sub === 'status' || sub === 'scale') return `the ${sub} subresource cannot change images`;
  return undefined;
}

/** A shape problem in the request itself (the server checks the envelope; this guards the decider on its own). */
export function requestProblem(request: unknown): string | undefined {
  if (!isRecord(request)) return 'request must be an object';
  if (typeof request['uid'] !== 'string' || request['uid'] === '') return 'request.uid is missing';
  if (!['CREATE', 'UPDATE', 'DELETE', 'CONNECT'].includes(request['operation'] as string))
    return `request.operation ${JSON.stringify(request['operation'])} is not CREATE, UPDATE, DELETE or CONNECT`;
  const kind = request['kind'];
  if (!isRecord(kind) || typeof kind['kind'] !== 'string' || typeof kind['group'] !== 'string')
    return 'request.kind must be {group, version, kind}';
  // The API server always sends the object on CREATE/UPDATE: without it there is nothing to check, so refuse.
  if ((request['operation'] === 'CREATE' || request['operation'] === 'UPDATE') && !isRecord(request['object']))
    return `request.object is missing on ${request['operation'] as string}`;
  return undefined;
}

/**
 * The kind whose images are read. `pods/ephemeralcontainers` arrives as kind Pod (Kubernetes ≥ 1.22); the older
 * `EphemeralContainers` object has no pod spec, so it is not read (undefined → refused): reading it as a Pod would
 * find no images and admit whatever debug container it adds.
 */
export function readableKind(request: AdmissionRequest): string | undefined {
  const { group, kind } = request.kind;
  return isSupportedKind(group, kind) ? kind : undefined;
}
