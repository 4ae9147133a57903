import './reflect-polyfill.js';
import { randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import {
  BasicConstraintsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  PublicKey,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  type Extension,
  type Name,
  type X509Certificate,
} from '@peculiar/x509';

/**
 * @peculiar/x509 works on WebCrypto. We hand it Node's implementation explicitly on every call instead of
 * mutating its global provider, so other packages in the process are unaffected.
 */
export const x509Crypto = webcrypto as unknown as NonNullable<Parameters<typeof X509CertificateGenerator.create>[1]>;

export type WebCryptoKey = Awaited<ReturnType<typeof x509Crypto.subtle.importKey>>;

/** ECDSA P-256 private key → WebCrypto signing key (non-extractable). */
export async function toSigningKey(privateKey: KeyObject): Promise<WebCryptoKey> {
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return x509Crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING, as hex. */
export async function keyIdentifierHex(spki: Uint8Array): Promise<string> {
  const id = await new PublicKey(spki).getKeyIdentifier(x509Crypto);
  return Buffer.from(id).toString('hex');
}

/** A random positive 20-byte serial (RFC 5280 §4.1.2.2: ≤ 20 octets, positive, unpredictable). */
export function randomSerialHex(): string {
  const bytes = randomBytes(20);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and without a leading zero octet
  return bytes.toString('hex');
}

/** A self-signed CA certificate for `keys`: critical basicConstraints with `pathLength`, keyCertSign + cRLSign, SKI. */
export async function selfSignedCaCertificate(o: {
  name: Name;
  keys: { publicKey: KeyObject; privateKey: KeyObject };
  notBefore: Date;
  validityMs: number;
  pathLength: number;
  extensions?: Extension[];
}): Promise<X509Certificate> {
  const spki = o.keys.publicKey.export({ format: 'der', type: 'spki' });
  return X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: o.name,
      issuer: o.name,
      notBefore: o.notBefore,
      notAfter: new Date(o.notBefore.getTime() + o.validityMs),
      publicKey: spki,
      signingKey: await toSigningKey(o.keys.privateKey),
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(true, o.pathLength, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        new SubjectKeyIdentifierExtension(await keyIdentifierHex(spki)),
        ...(o.extensions ?? []),
      ],
    },
    x509Crypto,
  );
}
