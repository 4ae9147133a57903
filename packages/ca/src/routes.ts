import { HttpLimitError } from '@airlock/core';
import { isOidcRefusal } from '@airlock/identity';
import type { CertificateAuthority, SigningCertificateRequest } from './authority.js';
import { CaError } from './errors.js';

/** A route's answer; the server turns it into JSON. */
export interface RouteResult {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * Parses Fulcio's `CreateSigningCertificateRequest` JSON (proto3 JSON names). The token comes from
 * `credentials.oidcIdentityToken`, else from an `Authorization: Bearer` header (how Fulcio's gRPC metadata arrives
 * over HTTP from clients such as cosign).
 */
export function parseSigningCertRequest(body: unknown, authorization: string | undefined): SigningCertificateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new CaError('CA_REQUEST_INVALID', 'request body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  const credentials = b.credentials as Record<string, unknown> | undefined;
  let token: unknown =
    typeof credentials === 'object' && credentials !== null ? credentials.oidcIdentityToken : undefined;
  if (token === undefined && authorization?.startsWith('Bearer ')) token = authorization.slice('Bearer '.length).trim();
  if (typeof token !== 'string' || token.length === 0) {
    throw new CaError('CA_REQUEST_INVALID', 'credentials.oidcIdentityToken is required');
  }
  const pkr = b.publicKeyRequest;
  const csr = b.certificateSigningRequest;
  if (pkr !== undefined && csr !== undefined) {
    throw new CaError('CA_REQUEST_INVALID', 'give either publicKeyRequest or certificateSigningRequest, not both');
  }
  if (csr !== undefined) {
    if (typeof csr !== 'string') throw new CaError('CA_REQUEST_INVALID', 'certificateSigningRequest must be a string');
    return { token, csr };
  }
  if (typeof pkr !== 'object' || pkr === null) {
    throw new CaError('CA_REQUEST_INVALID', 'publicKeyRequest (or certificateSigningRequest) is required');
  }
  const p = pkr as Record<string, unknown>;
  const publicKey = p.publicKey as Record<string, unknown> | undefined;
  if (typeof publicKey !== 'object' || publicKey === null || typeof publicKey.content !== 'string') {
    throw new CaError('CA_REQUEST_INVALID', 'publicKeyRequest.publicKey.content is required');
  }
  if (typeof p.proofOfPossession !== 'string') {
    throw new CaError('CA_REQUEST_INVALID', 'publicKeyRequest.proofOfPossession is required');
  }
  // publicKey.algorithm is informational only, as in Fulcio: the key type comes from the SPKI itself.
  return { token, publicKey: publicKey.content, proofOfPossession: p.proofOfPossession };
}

/** `POST /api/v2/signingCert` → 201 with a detached-SCT chain (we run no CT log, so no SCT). */
export async function signingCertRoute(
  ca: CertificateAuthority,
  body: unknown,
  authorization: string | undefined,
): Promise<RouteResult> {
  const request = parseSigningCertRequest(body, authorization);
  const issued = await ca.issue(request);
  return {
    status: 201,
    body: { signedCertificateDetachedSct: { chain: { certificates: issued.chainPem } } },
  };
}

export function trustBundleRoute(ca: CertificateAuthority): RouteResult {
  return { status: 200, body: ca.trustBundle() };
}

export function configurationRoute(ca: CertificateAuthority): RouteResult {
  return { status: 200, body: ca.configuration() };
}

/**
 * Maps a failure to an HTTP status: token refusals 401, request/key problems 400, an unreachable issuer JWKS 503,
 * anything else 500 (with a generic message, so internals do not leak).
 */
export function errorResult(err: unknown): RouteResult {
  if (err instanceof HttpLimitError) {
    // A half-read body leaves the connection unusable: close it after the answer.
    return { status: err.status, body: { code: err.code, message: err.message }, headers: { connection: 'close' } };
  }
  const code = (err as { code?: unknown }).code;
  const message = (err as { message?: unknown }).message;
  if (typeof code === 'string' && typeof message === 'string') {
    if (isOidcRefusal(code)) return { status: 401, body: { code, message } };
    if (code === 'OIDC_JWKS_UNAVAILABLE') return { status: 503, body: { code, message } };
    if (err instanceof CaError) {
      const status =
        err.code === 'CA_NOT_VALID_NOW' || err.code === 'CA_KEY_INVALID' || err.code === 'CA_CONFIG_INVALID'
          ? 500
          : 400;
      return { status, body: { code, message } };
    }
  }
  return { status: 500, body: { code: 'INTERNAL', message: 'internal error' } };
}
