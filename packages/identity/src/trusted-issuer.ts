import type { JWK } from 'jose';
import { IdentityError } from './errors.js';
import { validateIssuerUrl } from './issuer-url.js';
import { validateTrustDomain } from './spiffe.js';

/**
 * One OIDC issuer a relying party (the CA) accepts, in the spirit of Fulcio's `OIDCIssuer` config
 * (https://github.com/sigstore/fulcio/blob/main/docs/oidc.md). The `type` decides which claim names the identity
 * and which SAN the certificate carries.
 */
export interface TrustedIssuer {
  /** Exact `iss` value. */
  issuerUrl: string;
  type: TrustedIssuerType;
  /** spiffe: `sub` must be a SPIFFE ID in this trust domain. */
  trustDomain?: string;
  /** uri: `sub` must be a URI whose scheme and host match this one (e.g. `https://ci.corp.internal`). */
  subjectDomain?: string;
  /** JWKS location; otherwise taken from `<issuerUrl>/.well-known/openid-configuration`. */
  jwksUrl?: string;
  /** Expected `aud` for this issuer; overrides the verifier-wide audience. */
  audience?: string;
  /** The issuer's keys given in-process (the plane's embedded issuer): nothing is fetched, so `issuerUrl` may be http. */
  jwks?: { keys: JWK[] };
  /**
   * Accept plain-http `issuerUrl`/`jwksUrl`/discovered `jwks_uri` (tests only: `airlock up --allow-insecure-issuer`).
   * Without it an external issuer and its JWKS must be https: over http anyone on the path could swap the keys.
   */
  allowInsecureHttp?: boolean;
  /**
   * The issuer may assert attested node claims (`airlock_node_attestation`): only an issuer that verifies node
   * evidence before it signs (the plane's own issuer, fed by the identity agent). A token from any other issuer
   * carrying that claim is refused by the CA, so a foreign issuer cannot inject attestation extensions.
   */
  attestationClaims?: boolean;
}

export type TrustedIssuerType = 'spiffe' | 'email' | 'kubernetes' | 'uri';

const TYPES: readonly TrustedIssuerType[] = ['spiffe', 'email', 'kubernetes', 'uri'];

/**
 * Validates an issuer list (fail closed at start-up rather than at the first request): known type, http(s)
 * issuer URL without query/fragment (kept verbatim: `iss` is matched exactly), the per-type field present, no
 * duplicate `issuerUrl`. Returns clean copies.
 */
export function validateTrustedIssuers(issuers: unknown): TrustedIssuer[] {
  if (!Array.isArray(issuers) || issuers.length === 0) {
    throw new IdentityError('OIDC_CONFIG_INVALID', 'at least one trusted OIDC issuer must be configured');
  }
  const seen = new Set<string>();
  return issuers.map((raw: unknown, i): TrustedIssuer => {
    const where = `trusted issuer #${i}`;
    if (typeof raw !== 'object' || raw === null)
      throw new IdentityError('OIDC_CONFIG_INVALID', `${where} must be an object`);
    const r = raw as Record<string, unknown>;
    const issuerUrl = validateIssuerUrl(r.issuerUrl, 'OIDC_CONFIG_INVALID');
    if (seen.has(issuerUrl))
      throw new IdentityError('OIDC_CONFIG_INVALID', `${where}: issuer ${issuerUrl} is configured twice`);
    seen.add(issuerUrl);
    if (!TYPES.includes(r.type as TrustedIssuerType)) {
      throw new IdentityError(
        'OIDC_CONFIG_INVALID',
        `${where} (${issuerUrl}): type must be one of ${TYPES.join(', ')}`,
      );
    }
    const out: TrustedIssuer = { issuerUrl, type: r.type as TrustedIssuerType };
    if (r.allowInsecureHttp === true) out.allowInsecureHttp = true;
    if (r.attestationClaims === true) out.attestationClaims = true;
    if (r.jwks !== undefined) out.jwks = validateStaticJwks(r.jwks, where);
    if (!out.jwks && !out.allowInsecureHttp && !issuerUrl.startsWith('https://')) {
      throw new IdentityError(
        'OIDC_CONFIG_INVALID',
        `${where} (${issuerUrl}): an external issuer must be https (its keys are fetched from it); ` +
          'plain http only with --allow-insecure-issuer, for tests',
      );
    }
    if (out.type === 'spiffe') {
      if (typeof r.trustDomain !== 'string') {
        throw new IdentityError('OIDC_CONFIG_INVALID', `${where} (${issuerUrl}): spiffe issuers need a trustDomain`);
      }
      try {
        out.trustDomain = validateTrustDomain(r.trustDomain);
      } catch (err) {
        throw new IdentityError('OIDC_CONFIG_INVALID', `${where} (${issuerUrl}): ${(err as Error).message}`, {
          cause: err,
        });
      }
    }
    if (out.type === 'uri') {
      const sd = r.subjectDomain;
      let parsed: URL | undefined;
      try {
        parsed = typeof sd === 'string' ? new URL(sd) : undefined;
      } catch {
        parsed = undefined;
      }
      if (typeof sd !== 'string' || !parsed || !parsed.hostname) {
        throw new IdentityError(
          'OIDC_CONFIG_INVALID',
          `${where} (${issuerUrl}): uri issuers need a subjectDomain URL such as https://ci.example`,
        );
      }
      out.subjectDomain = sd;
    }
    if (r.jwksUrl !== undefined) {
      const scheme = out.allowInsecureHttp ? /^https?:\/\// : /^https:\/\//;
      if (typeof r.jwksUrl !== 'string' || !scheme.test(r.jwksUrl)) {
        const what = out.allowInsecureHttp ? 'an http(s)' : 'an https';
        throw new IdentityError('OIDC_CONFIG_INVALID', `${where} (${issuerUrl}): jwksUrl must be ${what} URL`);
      }
      out.jwksUrl = r.jwksUrl;
    }
    if (r.audience !== undefined) {
      if (typeof r.audience !== 'string' || r.audience.length === 0) {
        throw new IdentityError('OIDC_CONFIG_INVALID', `${where} (${issuerUrl}): audience must be a non-empty string`);
      }
      out.audience = r.audience;
    }
    return out;
  });
}

function validateStaticJwks(value: unknown, where: string): { keys: JWK[] } {
  const keys = (value as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'object' && k !== null)) {
    throw new IdentityError('OIDC_CONFIG_INVALID', `${where}: jwks must be a JWK Set with at least one key`);
  }
  return { keys: keys as JWK[] };
}
