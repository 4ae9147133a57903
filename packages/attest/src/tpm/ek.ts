/** EK certificate checks: the certificate chains to a configured manufacturer CA and certifies this EK. */
import type { X509Certificate } from 'node:crypto';
import { AttestError } from '../errors.js';
import { parseCertificate, verifyChain } from '../x509-chain.js';
import { publicKeyObject, spkiDer, type TpmPublic } from './public.js';

export interface EkTrust {
  /** Manufacturer root CAs (for swtpm: its local CA's root). */
  roots: X509Certificate[];
  /** Manufacturer intermediate CAs the operator configured (the attester may add more, untrusted). */
  intermediates?: X509Certificate[];
}

/** Verifies the EK certificate chain and that its key is `ekPublic`'s key. Returns the parsed leaf. */
export function verifyEkCertificate(
  certDer: Buffer,
  presentedIntermediates: Buffer[],
  ekPublic: TpmPublic,
  trust: EkTrust,
  now: Date,
): X509Certificate {
  const what = 'EK certificate';
  const leaf = parseCertificate(certDer, what, 'EK_CERT_UNTRUSTED');
  const extra = presentedIntermediates.map((d, i) =>
    parseCertificate(d, `EK intermediate #${i + 1}`, 'EK_CERT_UNTRUSTED'),
  );
  verifyChain(leaf, [...(trust.intermediates ?? []), ...extra], trust.roots, { now, what, code: 'EK_CERT_UNTRUSTED' });
  if (!spkiDer(leaf.publicKey).equals(spkiDer(publicKeyObject(ekPublic))))
    throw new AttestError('EK_KEY_MISMATCH', 'the EK public key is not the key the EK certificate certifies');
  return leaf;
}
