import { IdentityError } from './errors.js';

/**
 * SPIFFE ID parsing per https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md (§2):
 * `spiffe://<trust-domain>/<path>`; trust domain `[a-z0-9._-]+`; path segments `[a-zA-Z0-9._-]+`, never empty,
 * `.` or `..`; no query, fragment, port or userinfo (all excluded by the character sets). Parsed by hand rather
 * than with `URL`, which would normalise (lower-case, resolve dot segments) what we must reject.
 */
export interface SpiffeId {
  readonly trustDomain: string;
  /** Path including its leading `/`; non-empty (a workload, not the trust domain itself). */
  readonly path: string;
  readonly id: string;
}

const SCHEME = 'spiffe://';
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[a-zA-Z0-9._-]+$/;

/** Throws `SPIFFE_ID_INVALID` unless `td` is a valid trust domain name. */
export function validateTrustDomain(td: string): string {
  if (typeof td !== 'string' || td.length === 0 || td.length > MAX_TRUST_DOMAIN_LENGTH || !TRUST_DOMAIN_RE.test(td)) {
    throw new IdentityError(
      'SPIFFE_ID_INVALID',
      `invalid SPIFFE trust domain ${JSON.stringify(td)}: expected 1-255 characters of [a-z0-9._-]`,
    );
  }
  if (td === '.' || td === '..') {
    throw new IdentityError('SPIFFE_ID_INVALID', `invalid SPIFFE trust domain ${JSON.stringify(td)}`);
  }
  return td;
}

/** Parses a workload SPIFFE ID (a path is required); throws `SPIFFE_ID_INVALID` naming the defect. */
export function parseSpiffeId(value: unknown): SpiffeId {
  const bad = (why: string): IdentityError =>
    new IdentityError('SPIFFE_ID_INVALID', `invalid SPIFFE ID ${JSON.stringify(String(value).slice(0, 200))}: ${why}`);
  if (typeof value !== 'string') throw bad('not a string');
  if (value.length > MAX_ID_LENGTH) throw bad(`longer than ${MAX_ID_LENGTH} characters`);
  if (!value.startsWith(SCHEME)) throw bad('scheme must be "spiffe://" (lower case)');
  const rest = value.slice(SCHEME.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (trustDomain.length === 0) throw bad('empty trust domain');
  if (!TRUST_DOMAIN_RE.test(trustDomain)) {
    throw bad('trust domain may only contain [a-z0-9._-] (no port, userinfo, query or fragment)');
  }
  validateTrustDomain(trustDomain);
  if (slash === -1) {
    throw bad('a workload path is required (spiffe://<trust-domain>/<path>)');
  }
  const path = rest.slice(slash);
  if (path === '/') throw bad('a workload path is required (spiffe://<trust-domain>/<path>)');
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment.length === 0) throw bad('empty path segment (double or trailing slash)');
    if (segment === '.' || segment === '..') throw bad('path segments "." and ".." are not allowed');
    if (!SEGMENT_RE.test(segment)) {
      throw bad('path segments may only contain [a-zA-Z0-9._-] (no query, fragment or percent-encoding)');
    }
  }
  return { trustDomain, path, id: value };
}

/** Parses `value` and checks it belongs to `trustDomain` (`SPIFFE_TRUST_DOMAIN_MISMATCH` otherwise). */
export function assertSpiffeIdInTrustDomain(value: unknown, trustDomain: string): SpiffeId {
  const id = parseSpiffeId(value);
  if (id.trustDomain !== trustDomain) {
    throw new IdentityError(
      'SPIFFE_TRUST_DOMAIN_MISMATCH',
      `SPIFFE ID ${id.id} is not in trust domain ${JSON.stringify(trustDomain)}`,
    );
  }
  return id;
}
