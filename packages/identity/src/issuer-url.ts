import { IdentityError, type IdentityErrorCode } from './errors.js';

/**
 * Checks an OIDC issuer URL: http(s), no credentials, query or fragment. Returned unchanged, because `iss` is
 * compared by simple string equality (OIDC Core §2) — `https://x` and `https://x/` are different issuers.
 */
export function validateIssuerUrl(value: unknown, code: IdentityErrorCode = 'IDENTITY_CONFIG_INVALID'): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 2048) {
    throw new IdentityError(code, `issuer URL must be a non-empty string of at most 2048 characters`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch (err) {
    throw new IdentityError(code, `issuer URL ${JSON.stringify(value)} is not a valid URL`, { cause: err });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new IdentityError(code, `issuer URL ${value} must use https (or http inside the perimeter)`);
  }
  if (url.username || url.password || url.search || url.hash || value.includes('?') || value.includes('#')) {
    throw new IdentityError(code, `issuer URL ${value} must not carry credentials, a query or a fragment`);
  }
  return value;
}

/** `validateIssuerUrl` plus trailing-slash removal: the form our own issuer uses for `iss`. */
export function normalizeIssuerUrl(value: unknown, code: IdentityErrorCode = 'IDENTITY_CONFIG_INVALID'): string {
  return validateIssuerUrl(value, code).replace(/\/+$/, '');
}

/** `<issuer>/.well-known/openid-configuration` (OpenID Connect Discovery 1.0 §4). */
export function discoveryUrlFor(issuerUrl: string): string {
  return `${issuerUrl.replace(/\/+$/, '')}/.well-known/openid-configuration`;
}
