import { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { IdentityError } from './errors.js';
import { parseSpiffeId, type SpiffeId } from './spiffe.js';

/**
 * Server-side mTLS with SPIFFE X509-SVIDs (https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md):
 * the peer's leaf chains to the operator's trust bundle, carries exactly one URI SAN which is a valid SPIFFE ID,
 * is not a CA, and that ID is on the service's allow list.
 */
const MAX_CHAIN_DEPTH = 5;

/** Parses a PEM trust bundle (one or more CERTIFICATE blocks); `MTLS_CONFIG_INVALID` if none or one is bad. */
export function parseTrustBundle(pem: string | Buffer): X509Certificate[] {
  const text = typeof pem === 'string' ? pem : pem.toString('utf8');
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new IdentityError('MTLS_CONFIG_INVALID', 'the trust bundle holds no PEM certificate');
  return blocks.map((b) => {
    try {
      return new X509Certificate(b);
    } catch (cause) {
      throw new IdentityError('MTLS_CONFIG_INVALID', 'the trust bundle holds an unparsable certificate', { cause });
    }
  });
}

/** The URI SANs of a certificate; refuses SAN strings Node had to quote (they never occur in a SPIFFE ID). */
function uriSans(cert: X509Certificate): string[] {
  const san = cert.subjectAltName ?? '';
  if (san.includes('"')) throw invalid('its subjectAltName has escaped (quoted) entries');
  return san
    .split(', ')
    .filter((e) => e.startsWith('URI:'))
    .map((e) => e.slice('URI:'.length));
}

function invalid(why: string): IdentityError {
  return new IdentityError('MTLS_CLIENT_CERT_INVALID', `invalid client certificate: ${why}`);
}

function validAt(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}

/** True when `child` was issued and signed by `parent` (names and signature). */
function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/** Walks leaf → (presented intermediates) → a trust-bundle certificate, checking validity at each step. */
function chainsToBundle(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  bundle: X509Certificate[],
  now: Date,
): boolean {
  let current = leaf;
  for (let depth = 0; depth < MAX_CHAIN_DEPTH; depth++) {
    if (!validAt(current, now)) return false;
    const anchor = bundle.find((b) => issuedBy(current, b));
    if (anchor) return validAt(anchor, now);
    const next = intermediates.find((c) => c.ca && c !== current && issuedBy(current, c));
    if (!next) return false;
    current = next;
  }
  return false;
}

/** The certificates the peer sent after its leaf (Node links them through `issuerCertificate`). */
function presentedIntermediates(socket: TLSSocket): X509Certificate[] {
  const out: X509Certificate[] = [];
  let cert = socket.getPeerCertificate(true);
  const seen = new Set<string>();
  while (cert?.issuerCertificate && !seen.has(cert.fingerprint256)) {
    seen.add(cert.fingerprint256);
    cert = cert.issuerCertificate;
    if (cert.raw) out.push(new X509Certificate(cert.raw));
  }
  return out;
}

/**
 * The validated SPIFFE ID of the peer of a TLS socket: `MTLS_CLIENT_CERT_MISSING` without a certificate,
 * `MTLS_CLIENT_CERT_INVALID` (naming why) unless it is an X509-SVID chaining to `trustBundle`.
 */
export function spiffeIdOfPeer(
  socket: TLSSocket,
  trustBundle: readonly X509Certificate[] | string | Buffer,
  now: Date = new Date(),
): SpiffeId {
  const bundle = Array.isArray(trustBundle)
    ? [...(trustBundle as readonly X509Certificate[])]
    : parseTrustBundle(trustBundle as string | Buffer);
  const leaf = typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
  if (!leaf) throw new IdentityError('MTLS_CLIENT_CERT_MISSING', 'no client certificate was presented');
  if (leaf.ca) throw invalid('it is a CA certificate, not an X509-SVID');
  const uris = uriSans(leaf);
  if (uris.length !== 1) throw invalid(`an X509-SVID has exactly one URI SAN, this one has ${uris.length}`);
  let id: SpiffeId;
  try {
    id = parseSpiffeId(uris[0]);
  } catch (err) {
    throw invalid((err as Error).message);
  }
  if (!chainsToBundle(leaf, presentedIntermediates(socket), bundle, now))
    throw invalid(`the certificate for ${id.id} does not chain to the trust bundle (or is expired)`);
  return id;
}

/**
 * An operator's allow list: each entry is either an exact SPIFFE ID or an anchored regular expression (`^…$`)
 * over the whole ID, e.g. `^spiffe://example\.org/airlock/workspace/[a-z0-9-]+$`.
 */
export function compileSpiffeAllowList(entries: readonly string[]): (id: string) => boolean {
  const exact = new Set<string>();
  const patterns: RegExp[] = [];
  for (const entry of entries) {
    if (entry.startsWith('^')) {
      if (!entry.endsWith('$'))
        throw new IdentityError('MTLS_CONFIG_INVALID', `SPIFFE ID pattern ${JSON.stringify(entry)} must end with $`);
      try {
        patterns.push(new RegExp(entry, 'u'));
      } catch (cause) {
        throw new IdentityError('MTLS_CONFIG_INVALID', `SPIFFE ID pattern ${JSON.stringify(entry)} is invalid`, {
          cause,
        });
      }
    } else {
      try {
        exact.add(parseSpiffeId(entry).id);
      } catch (cause) {
        throw new IdentityError('MTLS_CONFIG_INVALID', (cause as Error).message, { cause });
      }
    }
  }
  return (id) => exact.has(id) || patterns.some((p) => p.test(id));
}

/** Operator configuration of a service's client authentication. */
export interface SpiffeMtlsConfig {
  /** PEM trust bundle of the SPIFFE X.509 CA(s) whose SVIDs are accepted. */
  trustBundle: string | Buffer;
  /** Exact SPIFFE IDs or anchored `^…$` patterns; empty = any valid SVID from the bundle. */
  allow: readonly string[];
}

export type SpiffeAuthorization =
  { ok: true; spiffeId: string } | { ok: false; status: 401 | 403; code: string; message: string };

/** A per-service authorizer: validates a request's client SVID and checks its ID against the allow list. */
export function spiffeAuthorizer(config: SpiffeMtlsConfig): (req: IncomingMessage) => SpiffeAuthorization {
  const bundle = parseTrustBundle(config.trustBundle);
  const allowed = config.allow.length === 0 ? () => true : compileSpiffeAllowList(config.allow);
  return (req) => {
    let id: SpiffeId;
    try {
      id = spiffeIdOfPeer(req.socket as TLSSocket, bundle);
    } catch (err) {
      const e = err as IdentityError;
      return { ok: false, status: 401, code: e.code ?? 'MTLS_CLIENT_CERT_INVALID', message: e.message };
    }
    if (!allowed(id.id))
      return {
        ok: false,
        status: 403,
        code: 'MTLS_SPIFFE_ID_FORBIDDEN',
        message: `SPIFFE ID ${id.id} is not authorized for this service`,
      };
    return { ok: true, spiffeId: id.id };
  };
}

/** node:https server options requesting a client certificate from the trust bundle (handshake refuses others). */
export function spiffeTlsServerOptions(config: SpiffeMtlsConfig): {
  ca: string | Buffer;
  requestCert: true;
  rejectUnauthorized: true;
} {
  return { ca: config.trustBundle, requestCert: true, rejectUnauthorized: true };
}

/** Writes the JSON refusal of a failed authorization (`{error:{code,message}}`); true when refused. */
export function refuseUnauthorized(
  auth: SpiffeAuthorization,
  res: { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown },
): boolean {
  if (auth.ok) return false;
  res.writeHead(auth.status, { 'Content-Type': 'application/json', Connection: 'close' });
  res.end(JSON.stringify({ error: { code: auth.code, message: auth.message } }) + '\n');
  return true;
}

/** A service's mTLS configuration as the operator gives it (`--tls-cert/--tls-key/--client-ca/--allow-spiffe-id`). */
export interface ServiceMtlsOptions extends SpiffeMtlsConfig {
  cert: string | Buffer;
  key: string | Buffer;
  /** `all` (default): every request needs an authorized SVID; `writes`: only non-GET/HEAD requests do. */
  scope?: 'all' | 'writes';
}

/**
 * node:https options plus a request gate for a service: the handshake asks for (but does not demand) a client
 * certificate, so the gate can answer a missing or foreign one with a JSON 401 and an unauthorized ID with a 403.
 */
export function serviceMtls(options: ServiceMtlsOptions): {
  tls: {
    cert: string | Buffer;
    key: string | Buffer;
    ca: string | Buffer;
    requestCert: true;
    rejectUnauthorized: false;
    minVersion: 'TLSv1.2';
  };
  gate: (req: IncomingMessage, res: Parameters<typeof refuseUnauthorized>[1]) => boolean;
} {
  const authorize = spiffeAuthorizer(options);
  const scope = options.scope ?? 'all';
  return {
    tls: {
      cert: options.cert,
      key: options.key,
      ca: options.trustBundle,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
    },
    gate: (req, res) => {
      if (scope === 'writes' && (req.method === 'GET' || req.method === 'HEAD')) return false;
      return refuseUnauthorized(authorize(req), res);
    },
  };
}
