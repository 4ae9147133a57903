import { createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { MAX_NODE_ATTESTATION_CLAIM_LENGTH, NODE_ATTESTATION_TOKEN_CLAIM } from '@airlock/core';
import { calculateJwkThumbprint, importPKCS8, SignJWT, type CryptoKey, type JWK } from 'jose';
import { BUILD_CLAIM_NAMES, isBuildClaimName, MAX_BUILD_CLAIM_LENGTH, type BuildClaims } from './build-claims.js';
import { IdentityError } from './errors.js';
import { normalizeIssuerUrl } from './issuer-url.js';
import { loadOrCreateP256Key } from './key-file.js';
import { assertSpiffeIdInTrustDomain, validateTrustDomain } from './spiffe.js';

export const DEFAULT_TRUST_DOMAIN = 'airlock.internal';
export const DEFAULT_AUDIENCE = 'sigstore';
export const DEFAULT_TOKEN_TTL_SECONDS = 600;
export const DEFAULT_MAX_TOKEN_TTL_SECONDS = 3600;
export const ISSUER_ALG = 'ES256';

/** Files under `<dataDir>/identity/`. */
export const IDENTITY_DIR = 'identity';
export const SIGNING_KEY_FILE = 'signing-key.pem';
/** Written by the running issuer server so in-process callers (the CLI) learn the issuer URL and trust domain. */
export const ISSUER_METADATA_FILE = 'issuer.json';

export interface IssuerMetadata {
  issuerUrl: string;
  trustDomain: string;
  jwksUrl?: string;
}

export interface IdentityIssuerOptions {
  dataDir: string;
  /** The `iss` value. Defaults to the one recorded in `<dataDir>/identity/issuer.json` by a running server. */
  issuerUrl?: string;
  /** SPIFFE trust domain of the subjects. Defaults to the recorded one, else `airlock.internal`. */
  trustDomain?: string;
  /** Upper bound for `ttlSeconds` (default 3600). */
  maxTtlSeconds?: number;
  /**
   * A P-256 key held elsewhere (a PKCS#11 token): no key file is read or written, and a marker in the identity dir
   * makes every later key-file open (the break-glass path) fail with `IDENTITY_KEY_IN_TOKEN`.
   */
  signer?: ExternalJwtSigner;
}

/** SPKI + ECDSA-SHA256 returning a DER signature (the PKCS#11 signer's shape). */
export interface ExternalJwtSigner {
  readonly spkiDer: Buffer;
  sign(data: Uint8Array): Buffer;
}

/** Present in `<dataDir>/identity/` once the issuer key lives in a token. */
export const KEY_IN_TOKEN_MARKER = 'key-in-token';

export interface IssueTokenRequest {
  /** SPIFFE ID of the workload, in the issuer's trust domain. */
  subject: string;
  /** Default `sigstore` (what Fulcio-compatible CAs expect). */
  audience?: string;
  /** Default 600; 1..maxTtlSeconds. */
  ttlSeconds?: number;
  /** Build/source claims copied by the CA into Fulcio extensions (see `BUILD_CLAIM_NAMES`). */
  claims?: BuildClaims;
  /** Issue time (default now). For backdated tokens in tests and replay of recorded runs. */
  issuedAt?: Date;
  /**
   * Attested node claims (canonical JSON of @airlock/attest's NodeAttestationClaims), put in the
   * `airlock_node_attestation` claim. Only in-process callers that verified the node themselves (the identity
   * agent) set this; the HTTP token endpoint never forwards it, and the CA copies it only from issuers the
   * operator marked `attestationClaims: true`.
   */
  nodeAttestation?: string;
}

/**
 * The embedded workload-identity issuer: signs short-lived ES256 JWTs whose `sub` is a SPIFFE ID. Tokens never
 * carry `email`, because sigstore-js would then sign (and Fulcio certify) the email instead of `sub`.
 */
export class IdentityIssuer {
  readonly issuerUrl: string;
  readonly trustDomain: string;
  /** RFC 7638 JWK thumbprint (SHA-256) of the public key. */
  readonly keyId: string;
  readonly maxTtlSeconds: number;
  readonly #signingKey: CryptoKey | ExternalJwtSigner;
  readonly #publicJwk: JWK;

  private constructor(init: {
    issuerUrl: string;
    trustDomain: string;
    keyId: string;
    maxTtlSeconds: number;
    signingKey: CryptoKey | ExternalJwtSigner;
    publicJwk: JWK;
  }) {
    this.issuerUrl = init.issuerUrl;
    this.trustDomain = init.trustDomain;
    this.keyId = init.keyId;
    this.maxTtlSeconds = init.maxTtlSeconds;
    this.#signingKey = init.signingKey;
    this.#publicJwk = init.publicJwk;
  }

  /** Loads (or on first use generates) the signing key in `<dataDir>/identity/`. */
  static async open(options: IdentityIssuerOptions): Promise<IdentityIssuer> {
    const dir = path.join(options.dataDir, IDENTITY_DIR);
    const recorded =
      options.issuerUrl === undefined || options.trustDomain === undefined
        ? readIssuerMetadata(options.dataDir)
        : undefined;
    const issuerUrlInput = options.issuerUrl ?? recorded?.issuerUrl;
    if (issuerUrlInput === undefined) {
      throw new IdentityError(
        'IDENTITY_CONFIG_INVALID',
        `no issuer URL given and none recorded in ${path.join(dir, ISSUER_METADATA_FILE)} (start the issuer first)`,
      );
    }
    const issuerUrl = normalizeIssuerUrl(issuerUrlInput);
    const trustDomain = validateTrustDomain(options.trustDomain ?? recorded?.trustDomain ?? DEFAULT_TRUST_DOMAIN);
    const maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TOKEN_TTL_SECONDS;
    if (!Number.isSafeInteger(maxTtlSeconds) || maxTtlSeconds < 1 || maxTtlSeconds > 86_400) {
      throw new IdentityError(
        'IDENTITY_CONFIG_INVALID',
        `maxTtlSeconds must be an integer in 1..86400, got ${maxTtlSeconds}`,
      );
    }
    const { publicJwk, signingKey } = options.signer ? externalKey(dir, options.signer) : await fileKey(dir);
    const keyId = await calculateJwkThumbprint(publicJwk, 'sha256');
    return new IdentityIssuer({
      issuerUrl,
      trustDomain,
      keyId,
      maxTtlSeconds,
      signingKey,
      publicJwk: { ...publicJwk, kid: keyId, alg: ISSUER_ALG, use: 'sig' },
    });
  }

  /** The public JWK Set served at the issuer's `jwks_uri`. */
  jwks(): { keys: JWK[] } {
    return { keys: [{ ...this.#publicJwk }] };
  }

  /** OpenID Provider metadata (OIDC Discovery 1.0 §3) for this issuer. */
  discoveryDocument(jwksUrl: string): Record<string, unknown> {
    return {
      issuer: this.issuerUrl,
      jwks_uri: jwksUrl,
      id_token_signing_alg_values_supported: [ISSUER_ALG],
      subject_types_supported: ['public'],
      response_types_supported: ['id_token'],
      claims_supported: [
        'iss',
        'sub',
        'aud',
        'iat',
        'nbf',
        'exp',
        'jti',
        ...BUILD_CLAIM_NAMES,
        NODE_ATTESTATION_TOKEN_CLAIM,
      ],
      scopes_supported: ['openid'],
    };
  }

  /** Signs a compact JWT for a workload. Throws `SPIFFE_*` for a bad subject, `TOKEN_REQUEST_INVALID` otherwise. */
  async issueToken(request: IssueTokenRequest): Promise<string> {
    assertSpiffeIdInTrustDomain(request.subject, this.trustDomain);
    const audience = request.audience ?? DEFAULT_AUDIENCE;
    if (typeof audience !== 'string' || audience.length === 0 || audience.length > 256) {
      throw new IdentityError('TOKEN_REQUEST_INVALID', 'audience must be a non-empty string of at most 256 characters');
    }
    const ttl = request.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
    if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > this.maxTtlSeconds) {
      throw new IdentityError(
        'TOKEN_REQUEST_INVALID',
        `ttlSeconds must be an integer in 1..${this.maxTtlSeconds}, got ${String(ttl)}`,
      );
    }
    const extra: Record<string, string> = validateBuildClaims(request.claims);
    if (request.nodeAttestation !== undefined)
      extra[NODE_ATTESTATION_TOKEN_CLAIM] = validateNodeAttestationClaim(request.nodeAttestation);
    const issuedAt = request.issuedAt ?? new Date();
    if (!(issuedAt instanceof Date) || Number.isNaN(issuedAt.getTime())) {
      throw new IdentityError('TOKEN_REQUEST_INVALID', 'issuedAt must be a valid Date');
    }
    const iat = Math.floor(issuedAt.getTime() / 1000);
    if (isExternal(this.#signingKey)) {
      const claims = { ...extra, iss: this.issuerUrl, sub: request.subject, aud: audience };
      return signExternally(
        this.#signingKey,
        { alg: ISSUER_ALG, kid: this.keyId, typ: 'JWT' },
        {
          ...claims,
          iat,
          nbf: iat,
          exp: iat + ttl,
          jti: randomUUID(),
        },
      );
    }
    return new SignJWT({ ...extra })
      .setProtectedHeader({ alg: ISSUER_ALG, kid: this.keyId, typ: 'JWT' })
      .setIssuer(this.issuerUrl)
      .setSubject(request.subject)
      .setAudience(audience)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + ttl)
      .setJti(randomUUID())
      .sign(this.#signingKey);
  }
}

function isExternal(key: CryptoKey | ExternalJwtSigner): key is ExternalJwtSigner {
  return 'spkiDer' in key && typeof (key as ExternalJwtSigner).sign === 'function';
}

async function fileKey(dir: string): Promise<{ publicJwk: JWK; signingKey: CryptoKey }> {
  if (fs.existsSync(path.join(dir, KEY_IN_TOKEN_MARKER))) {
    throw new IdentityError(
      'IDENTITY_KEY_IN_TOKEN',
      `the issuer key of ${dir} lives in a PKCS#11 token: there is no key file to mint from. Workloads get ` +
        'identities from the attestation agent (airlock identity agent --identity-key pkcs11:…)',
    );
  }
  const { privateKey } = loadOrCreateP256Key(path.join(dir, SIGNING_KEY_FILE));
  const pkcs8 = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  return { publicJwk: publicJwkOf(privateKey), signingKey: await importPKCS8(pkcs8, ISSUER_ALG) };
}

/** A token key: never a key file; the marker closes the key-file path for good (a file left over is refused). */
function externalKey(dir: string, signer: ExternalJwtSigner): { publicJwk: JWK; signingKey: ExternalJwtSigner } {
  const publicKey = createPublicKey({ key: signer.spkiDer, format: 'der', type: 'spki' });
  if (publicKey.asymmetricKeyType !== 'ec' || publicKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new IdentityError('IDENTITY_KEY_INVALID', 'the issuer token key must be an ECDSA P-256 key (ES256)');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (fs.existsSync(path.join(dir, SIGNING_KEY_FILE)))
    throw new IdentityError(
      'IDENTITY_KEY_INVALID',
      `${path.join(dir, SIGNING_KEY_FILE)} exists: remove the old issuer key file before moving the key into a token`,
    );
  fs.writeFileSync(path.join(dir, KEY_IN_TOKEN_MARKER), 'pkcs11\n', { mode: 0o644 });
  const { kty, crv, x, y } = publicKey.export({ format: 'jwk' });
  return { publicJwk: { kty, crv, x, y } as JWK, signingKey: signer };
}

/** A compact JWS signed by the token: ES256 wants r||s (32 bytes each), the token gives DER. */
function signExternally(signer: ExternalJwtSigner, header: object, payload: object): string {
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${derToJoseP256(signer.sign(Buffer.from(input))).toString('base64url')}`;
}

function derToJoseP256(der: Buffer): Buffer {
  // SEQUENCE { INTEGER r, INTEGER s }, P-256 lengths always fit in one length byte.
  const int = (at: number): { value: Buffer; next: number } => {
    if (der[at] !== 0x02) throw new IdentityError('IDENTITY_KEY_INVALID', 'the token returned a malformed signature');
    const len = der[at + 1]!;
    const value = der.subarray(at + 2, at + 2 + len);
    return { value, next: at + 2 + len };
  };
  if (der[0] !== 0x30) throw new IdentityError('IDENTITY_KEY_INVALID', 'the token returned a malformed signature');
  const r = int(2);
  const s2 = int(r.next);
  const pad = (v: Buffer): Buffer => {
    const t = v.subarray(Math.max(0, v.length - 32));
    return Buffer.concat([Buffer.alloc(32 - t.length), t]);
  };
  return Buffer.concat([pad(r.value), pad(s2.value)]);
}

function validateBuildClaims(claims: unknown): Record<string, string> {
  if (claims === undefined) return {};
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) {
    throw new IdentityError('TOKEN_REQUEST_INVALID', 'claims must be an object of build claim name → string');
  }
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(claims)) {
    if (!isBuildClaimName(name)) {
      throw new IdentityError(
        'TOKEN_REQUEST_INVALID',
        `claim ${JSON.stringify(name)} is not a supported build claim (${BUILD_CLAIM_NAMES.join(', ')})`,
      );
    }
    if (value === undefined) continue;
    if (
      typeof value !== 'string' ||
      value.length === 0 ||
      value.length > MAX_BUILD_CLAIM_LENGTH ||
      hasControlCharacter(value)
    ) {
      throw new IdentityError(
        'TOKEN_REQUEST_INVALID',
        `claim ${name} must be a non-empty string of at most ${MAX_BUILD_CLAIM_LENGTH} characters without control characters`,
      );
    }
    out[name] = value;
  }
  return out;
}

function validateNodeAttestationClaim(value: unknown): string {
  let parsed: unknown;
  try {
    parsed = typeof value === 'string' && value.length <= MAX_NODE_ATTESTATION_CLAIM_LENGTH ? JSON.parse(value) : null;
  } catch {
    parsed = null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new IdentityError(
      'TOKEN_REQUEST_INVALID',
      `nodeAttestation must be a JSON object of at most ${MAX_NODE_ATTESTATION_CLAIM_LENGTH} characters`,
    );
  }
  return value as string;
}

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function publicJwkOf(privateKey: KeyObject): JWK {
  const jwk = privateKey.export({ format: 'jwk' });
  // Only the public members: dropping `d` is what makes this safe to publish.
  return { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y };
}

/** Reads `<dataDir>/identity/issuer.json`, or undefined if absent. Throws on a corrupt file. */
export function readIssuerMetadata(dataDir: string): IssuerMetadata | undefined {
  const file = path.join(dataDir, IDENTITY_DIR, ISSUER_METADATA_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new IdentityError('IDENTITY_CONFIG_INVALID', `${file} is not valid JSON`, { cause: err });
  }
  const rec = parsed as Partial<Record<keyof IssuerMetadata, unknown>>;
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    typeof rec.issuerUrl !== 'string' ||
    typeof rec.trustDomain !== 'string'
  ) {
    throw new IdentityError('IDENTITY_CONFIG_INVALID', `${file} must hold {issuerUrl, trustDomain}`);
  }
  return {
    issuerUrl: rec.issuerUrl,
    trustDomain: rec.trustDomain,
    ...(typeof rec.jwksUrl === 'string' ? { jwksUrl: rec.jwksUrl } : {}),
  };
}

/** Records the running issuer's URL and trust domain in `<dataDir>/identity/issuer.json` (atomic replace). */
export function writeIssuerMetadata(dataDir: string, metadata: IssuerMetadata): void {
  const dir = path.join(dataDir, IDENTITY_DIR);
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, ISSUER_METADATA_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(metadata, null, 2)}\n`, { mode: 0o644 });
  fs.renameSync(tmp, file);
}
