import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { IdentityError } from './errors.js';
import { discoveryUrlFor } from './issuer-url.js';
import { principalFromClaims, type OidcPrincipal } from './principal.js';
import { validateTrustedIssuers, type TrustedIssuer } from './trusted-issuer.js';

/**
 * Asymmetric JWS algorithms we accept. Never `none` and never `HS*`: with a symmetric algorithm a verifier could
 * be tricked into using a public key as an HMAC secret (RFC 8725 §2.1, §3.1).
 */
export const ALLOWED_JWT_ALGORITHMS = [
  'ES256',
  'ES384',
  'ES512',
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'EdDSA',
  'Ed25519',
] as const;

export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
const MAX_CLOCK_TOLERANCE_SECONDS = 300;
const MAX_TOKEN_LENGTH = 32 * 1024;
const MAX_DISCOVERY_BYTES = 64 * 1024;
const JWT_SHAPE_RE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

export interface VerifyOidcTokenOptions {
  issuers: readonly TrustedIssuer[];
  /** Expected `aud` unless the issuer entry sets its own; default `sigstore`. */
  audience?: string;
  now?: Date;
  /** Leeway for `exp`/`nbf`/`iat`, default 30 s, at most 300 s. */
  clockToleranceSeconds?: number;
}

export interface VerifiedOidcToken {
  issuer: TrustedIssuer;
  subject: string;
  claims: JWTPayload;
  principal: OidcPrincipal;
}

type KeySet = ReturnType<typeof createRemoteJWKSet> | ReturnType<typeof createLocalJWKSet>;

/**
 * Remote JWKS resolvers per issuer, found through OIDC discovery unless the issuer pins `jwksUrl`. jose's
 * resolver caches keys and refetches (rate-limited) when it meets an unknown `kid`, which covers key rotation.
 */
export class JwksCache {
  readonly #sets = new Map<string, KeySet>();
  readonly #discovered = new Map<string, Promise<string>>();
  readonly #timeoutMs: number;

  constructor(options: { timeoutMs?: number } = {}) {
    this.#timeoutMs = options.timeoutMs ?? 5000;
  }

  async keySetFor(issuer: TrustedIssuer): Promise<KeySet> {
    if (issuer.jwks) return createLocalJWKSet(issuer.jwks);
    const jwksUrl = issuer.jwksUrl ?? (await this.#discover(issuer));
    let set = this.#sets.get(jwksUrl);
    if (!set) {
      set = createRemoteJWKSet(new URL(jwksUrl), {
        timeoutDuration: this.#timeoutMs,
        cooldownDuration: 30_000,
        cacheMaxAge: 10 * 60_000,
      });
      this.#sets.set(jwksUrl, set);
    }
    return set;
  }

  #discover(issuer: TrustedIssuer): Promise<string> {
    const issuerUrl = issuer.issuerUrl;
    let pending = this.#discovered.get(issuerUrl);
    if (!pending) {
      pending = fetchJwksUri(issuerUrl, this.#timeoutMs, issuer.allowInsecureHttp === true);
      this.#discovered.set(issuerUrl, pending);
      // A failed discovery is retried on the next token rather than cached forever.
      pending.catch(() => this.#discovered.delete(issuerUrl));
    }
    return pending;
  }
}

async function fetchJwksUri(issuerUrl: string, timeoutMs: number, allowHttp: boolean): Promise<string> {
  const url = discoveryUrlFor(issuerUrl);
  const unavailable = (why: string, cause?: unknown): IdentityError =>
    new IdentityError(
      'OIDC_JWKS_UNAVAILABLE',
      `OIDC discovery for ${issuerUrl} failed: ${why}`,
      cause === undefined ? {} : { cause },
    );
  let body: unknown;
  try {
    const res = await fetch(url, {
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
      headers: { accept: 'application/json' },
    });
    if (!res.ok) throw unavailable(`GET ${url} answered HTTP ${res.status}`);
    body = JSON.parse(await readBounded(res, MAX_DISCOVERY_BYTES));
  } catch (err) {
    if (err instanceof IdentityError) throw err;
    throw unavailable(`GET ${url}: ${(err as Error).message}`, err);
  }
  const doc = body as Record<string, unknown>;
  if (typeof body !== 'object' || body === null) throw unavailable('discovery document is not a JSON object');
  // OIDC Discovery §4.3: the document's issuer must be exactly the issuer we asked about.
  if (doc.issuer !== issuerUrl) throw unavailable(`discovery document names issuer ${JSON.stringify(doc.issuer)}`);
  const scheme = allowHttp ? /^https?:\/\// : /^https:\/\//;
  if (typeof doc.jwks_uri !== 'string' || !scheme.test(doc.jwks_uri))
    throw unavailable(`jwks_uri is missing or not ${allowHttp ? 'http(s)' : 'https'}`);
  return doc.jwks_uri;
}

async function readBounded(res: Response, limit: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > limit) throw new Error(`response larger than ${limit} bytes`);
  if (!res.body) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > limit) throw new Error(`response larger than ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Verifies OIDC identity tokens against a fixed list of trusted issuers (reuse one instance: it caches JWKS). */
export class OidcTokenVerifier {
  readonly issuers: readonly TrustedIssuer[];
  readonly #audience: string;
  readonly #tolerance: number;
  readonly #keys: JwksCache;

  constructor(options: Omit<VerifyOidcTokenOptions, 'now'> & { jwksCache?: JwksCache }) {
    this.issuers = validateTrustedIssuers(options.issuers);
    this.#audience = options.audience ?? 'sigstore';
    const tolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
    if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_SECONDS) {
      throw new IdentityError(
        'OIDC_CONFIG_INVALID',
        `clockToleranceSeconds must be within 0..${MAX_CLOCK_TOLERANCE_SECONDS}`,
      );
    }
    this.#tolerance = tolerance;
    this.#keys = options.jwksCache ?? new JwksCache();
  }

  /** Verifies `token`; every refusal is an `IdentityError` with a distinct `OIDC_*` code. */
  async verify(token: unknown, options: { now?: Date } = {}): Promise<VerifiedOidcToken> {
    if (typeof token !== 'string' || token.length === 0)
      throw new IdentityError('OIDC_MALFORMED', 'identity token is missing');
    if (token.length > MAX_TOKEN_LENGTH)
      throw new IdentityError('OIDC_MALFORMED', `identity token is longer than ${MAX_TOKEN_LENGTH} characters`);
    if (!JWT_SHAPE_RE.test(token))
      throw new IdentityError('OIDC_MALFORMED', 'identity token is not a compact JWS (three base64url parts)');

    let alg: unknown;
    let unverified: JWTPayload;
    try {
      alg = decodeProtectedHeader(token).alg;
      unverified = decodeJwt(token);
    } catch (err) {
      throw new IdentityError('OIDC_MALFORMED', `identity token cannot be decoded: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (typeof alg !== 'string' || !(ALLOWED_JWT_ALGORITHMS as readonly string[]).includes(alg)) {
      // Nothing from an unverified token is quoted: errors reach logs and HTTP bodies.
      throw new IdentityError(
        'OIDC_UNSUPPORTED_ALG',
        `identity token algorithm is not allowed (allowed: ${ALLOWED_JWT_ALGORITHMS.join(', ')})`,
      );
    }
    // Selecting the issuer from the unverified `iss` is safe: the signature is then checked with that issuer's keys only.
    const iss = unverified.iss;
    const issuer = typeof iss === 'string' ? this.issuers.find((i) => i.issuerUrl === iss) : undefined;
    if (!issuer) {
      throw new IdentityError(
        'OIDC_UNTRUSTED_ISSUER',
        `identity token issuer (iss) is not trusted; trusted issuers: ${this.issuers.map((i) => i.issuerUrl).join(', ')}`,
      );
    }
    const audience = issuer.audience ?? this.#audience;
    const now = options.now ?? new Date();

    const keySet = await this.#keys.keySetFor(issuer);
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keySet, {
        issuer: issuer.issuerUrl,
        audience,
        algorithms: [...ALLOWED_JWT_ALGORITHMS],
        clockTolerance: this.#tolerance,
        currentDate: now,
        requiredClaims: ['exp', 'iat', 'sub'],
      }));
    } catch (err) {
      throw mapJoseError(err, issuer, audience);
    }
    const nowSeconds = Math.floor(now.getTime() / 1000);
    if (typeof claims.iat === 'number' && claims.iat > nowSeconds + this.#tolerance) {
      throw new IdentityError(
        'OIDC_NOT_YET_VALID',
        `identity token from ${issuer.issuerUrl} was issued in the future (iat ${claims.iat})`,
      );
    }
    if (typeof claims.sub !== 'string' || claims.sub.length === 0) {
      throw new IdentityError('OIDC_BAD_SUBJECT', `identity token from ${issuer.issuerUrl} has no sub`);
    }
    const principal = principalFromClaims(issuer, claims);
    return { issuer, subject: claims.sub, claims, principal };
  }
}

function mapJoseError(err: unknown, issuer: TrustedIssuer, audience: string): IdentityError {
  const code = (err as { code?: unknown }).code;
  const claim = (err as { claim?: unknown }).claim;
  const reason = (err as { reason?: unknown }).reason;
  const msg = (err as Error).message ?? String(err);
  const from = `identity token from ${issuer.issuerUrl}`;
  const e = (c: ConstructorParameters<typeof IdentityError>[0], m: string): IdentityError =>
    new IdentityError(c, m, { cause: err });
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return e('OIDC_EXPIRED', `${from} has expired`);
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (reason === 'missing') return e('OIDC_MALFORMED', `${from} lacks the required ${String(claim)} claim`);
      if (claim === 'aud')
        return e('OIDC_BAD_AUDIENCE', `${from} is not intended for audience ${JSON.stringify(audience)}`);
      if (claim === 'nbf' && reason === 'check_failed')
        return e('OIDC_NOT_YET_VALID', `${from} is not valid yet (nbf)`);
      if (claim === 'iss') return e('OIDC_UNTRUSTED_ISSUER', `${from}: ${msg}`);
      return e('OIDC_MALFORMED', `${from}: invalid ${String(claim)} claim (${msg})`);
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return e('OIDC_BAD_SIGNATURE', `${from}: signature does not verify with the issuer's keys`);
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return e('OIDC_BAD_SIGNATURE', `${from}: no key in the issuer's JWKS matches the token's kid/alg`);
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return e('OIDC_UNSUPPORTED_ALG', `${from}: ${msg}`);
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
    case 'ERR_JOSE_NOT_SUPPORTED':
      return e('OIDC_MALFORMED', `${from} is malformed: ${msg}`);
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
    case 'ERR_JOSE_GENERIC':
      return e('OIDC_JWKS_UNAVAILABLE', `cannot fetch the JWKS of ${issuer.issuerUrl}: ${msg}`);
    default:
      if (err instanceof IdentityError) return err;
      // fetch() network failures surface as plain TypeErrors.
      return e('OIDC_JWKS_UNAVAILABLE', `cannot verify ${from}: ${msg}`);
  }
}

const sharedJwksCache = new JwksCache();

/** One-shot verification (JWKS cached process-wide). Prefer an `OidcTokenVerifier` in long-lived services. */
export async function verifyOidcToken(token: unknown, options: VerifyOidcTokenOptions): Promise<VerifiedOidcToken> {
  const { now, ...rest } = options;
  return new OidcTokenVerifier({ ...rest, jwksCache: sharedJwksCache }).verify(token, now ? { now } : {});
}
