import { AirlockError } from '@airlock/core';

/**
 * Failure codes of the identity package. `OIDC_*` codes are token-verification refusals (a CA maps them to
 * HTTP 401); the others are issuer-side configuration or request problems.
 */
export type IdentityErrorCode =
  // Issuer side
  | 'SPIFFE_ID_INVALID'
  | 'SPIFFE_TRUST_DOMAIN_MISMATCH'
  | 'IDENTITY_KEY_INVALID'
  | 'IDENTITY_KEY_PERMISSIONS' // key file group/world-readable or not owned by this service's user
  | 'IDENTITY_KEY_IN_TOKEN' // the issuer key lives in a PKCS#11 token: the key-file (break-glass) path is closed
  | 'IDENTITY_KEY_UNREADABLE' // the caller is not the key's owner (the plane runs as its own service user)
  | 'IDENTITY_BREAK_GLASS_REQUIRED' // minting from the key file without the explicit admin flag
  | 'IDENTITY_CONFIG_INVALID'
  | 'TOKEN_REQUEST_INVALID'
  // mTLS peers (X509-SVIDs)
  | 'MTLS_CONFIG_INVALID'
  | 'MTLS_CLIENT_CERT_MISSING'
  | 'MTLS_CLIENT_CERT_INVALID'
  | 'MTLS_SPIFFE_ID_FORBIDDEN'
  // Verifier side
  | 'OIDC_CONFIG_INVALID'
  | 'OIDC_MALFORMED'
  | 'OIDC_UNSUPPORTED_ALG'
  | 'OIDC_UNTRUSTED_ISSUER'
  | 'OIDC_JWKS_UNAVAILABLE'
  | 'OIDC_BAD_SIGNATURE'
  | 'OIDC_EXPIRED'
  | 'OIDC_NOT_YET_VALID'
  | 'OIDC_BAD_AUDIENCE'
  | 'OIDC_BAD_SUBJECT'
  | 'OIDC_EMAIL_UNVERIFIED'
  | 'OIDC_BAD_CLAIMS';

export class IdentityError extends AirlockError<IdentityErrorCode> {}

/** True for the codes that mean "this token is not acceptable" (as opposed to a server-side failure). */
export function isOidcRefusal(code: string): boolean {
  return code.startsWith('OIDC_') && code !== 'OIDC_JWKS_UNAVAILABLE' && code !== 'OIDC_CONFIG_INVALID';
}
