import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { IdentityError } from './errors.js';
import { parseSpiffeId } from './spiffe.js';

/**
 * One X509-SVID in the shape of the SPIFFE Workload API's `X509SVID` message
 * (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE_Workload_API.md §5.2): DER fields are
 * concatenated ASN.1 DER (leaf first), the key PKCS#8 DER. `x509_svid_key` is absent when the workload
 * generated its own key. `expires_at` (Unix seconds) is the leaf's notAfter, for rotation before expiry.
 */
export interface X509Svid {
  spiffe_id: string;
  x509_svid: Buffer;
  x509_svid_key?: Buffer;
  bundle: Buffer;
  hint: string;
  expires_at: number;
}

/** The same as JSON (an SVID file handed to a workload): DER fields base64. */
export interface X509SvidJson {
  spiffe_id: string;
  x509_svid: string;
  x509_svid_key?: string;
  bundle: string;
  hint: string;
  expires_at: number;
}

export function x509SvidToJson(svid: X509Svid): X509SvidJson {
  return {
    spiffe_id: svid.spiffe_id,
    x509_svid: svid.x509_svid.toString('base64'),
    ...(svid.x509_svid_key ? { x509_svid_key: svid.x509_svid_key.toString('base64') } : {}),
    bundle: svid.bundle.toString('base64'),
    hint: svid.hint,
    expires_at: svid.expires_at,
  };
}

/** Splits concatenated DER certificates (each a SEQUENCE with a definite length). */
export function splitDerCertificates(der: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < der.length) {
    if (der[at] !== 0x30 || at + 2 > der.length) throw svidInvalid('not concatenated DER certificates');
    const first = der[at + 1]!;
    let len = first;
    let header = 2;
    if (first & 0x80) {
      const n = first & 0x7f;
      if (n === 0 || n > 4 || at + 2 + n > der.length) throw svidInvalid('bad DER length');
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[at + 2 + i]!;
      header = 2 + n;
    }
    const end = at + header + len;
    if (end > der.length) throw svidInvalid('truncated DER certificate');
    out.push(der.subarray(at, end));
    at = end;
  }
  return out;
}

function svidInvalid(why: string): IdentityError {
  return new IdentityError('MTLS_CONFIG_INVALID', `invalid X509-SVID: ${why}`);
}

function derToPem(der: Buffer): string {
  return new X509Certificate(der).toString();
}

/** PEM forms for node:tls (`cert`, `key`, `ca`). */
export interface X509SvidPem {
  spiffeId: string;
  certChainPem: string;
  keyPem: string;
  bundlePem: string;
}

/** PEM forms of an SVID held in memory (e.g. fresh from the agent); it must carry its key. */
export function x509SvidToPem(svid: X509Svid): X509SvidPem {
  if (!svid.x509_svid_key) throw svidInvalid(`the SVID for ${svid.spiffe_id} carries no key`);
  const keyPem = createPrivateKey({ key: svid.x509_svid_key, format: 'der', type: 'pkcs8' })
    .export({ format: 'pem', type: 'pkcs8' })
    .toString();
  const pems = (der: Buffer) => splitDerCertificates(der).map(derToPem).join('');
  return {
    spiffeId: parseSpiffeId(svid.spiffe_id).id,
    certChainPem: pems(svid.x509_svid),
    keyPem,
    bundlePem: pems(svid.bundle),
  };
}

/** Reads an SVID file (X509SvidJson); it must carry its key. Never echoes key material in errors. */
export function readX509SvidFile(file: string): X509SvidPem {
  let json: X509SvidJson;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as X509SvidJson;
  } catch (cause) {
    throw new IdentityError('MTLS_CONFIG_INVALID', `SVID file ${file} is not readable JSON`, { cause });
  }
  if (typeof json.x509_svid !== 'string' || typeof json.bundle !== 'string' || typeof json.x509_svid_key !== 'string')
    throw svidInvalid(`${file} needs x509_svid, x509_svid_key and bundle (base64 DER)`);
  const spiffeId = parseSpiffeId(json.spiffe_id).id;
  let keyPem: string;
  try {
    keyPem = createPrivateKey({ key: Buffer.from(json.x509_svid_key, 'base64'), format: 'der', type: 'pkcs8' })
      .export({ format: 'pem', type: 'pkcs8' })
      .toString();
  } catch {
    throw svidInvalid(`${file}: x509_svid_key is not a PKCS#8 DER key`);
  }
  const pems = (b64: string) => splitDerCertificates(Buffer.from(b64, 'base64')).map(derToPem).join('');
  return { spiffeId, certChainPem: pems(json.x509_svid), keyPem, bundlePem: pems(json.bundle) };
}
