import './reflect-polyfill.js';
import { generateKeyPairSync } from 'node:crypto';
import { isIP } from 'node:net';
import {
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { randomSerialHex, SIGNING_ALGORITHM, toSigningKey, x509Crypto } from './crypto-provider.js';

export interface TlsServerPair {
  /** PEM of the self-signed server certificate (also the CA bundle a client trusts). */
  certPem: string;
  /** PKCS#8 PEM of its P-256 private key. */
  keyPem: string;
}

/**
 * A throwaway self-signed TLS server certificate for `hosts` (IP addresses or DNS names), e.g. a loopback
 * webhook in `airlock demo`. Not a CA: it cannot sign anything else.
 */
export async function createTlsServerPair(
  hosts: readonly string[],
  options: { validityMs?: number; now?: Date } = {},
): Promise<TlsServerPair> {
  if (hosts.length === 0) throw new Error('a TLS server certificate needs at least one host');
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const notBefore = new Date((options.now ?? new Date()).getTime() - 60_000);
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: new Name([{ CN: [hosts[0]!] }]),
      issuer: new Name([{ CN: [hosts[0]!] }]),
      notBefore,
      notAfter: new Date(notBefore.getTime() + (options.validityMs ?? 24 * 3600_000)),
      publicKey: keys.publicKey.export({ format: 'der', type: 'spki' }),
      signingKey: await toSigningKey(keys.privateKey),
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
        new SubjectAlternativeNameExtension(hosts.map((h) => ({ type: isIP(h) ? 'ip' : 'dns', value: h }))),
      ],
    },
    x509Crypto,
  );
  return {
    certPem: `${cert.toString('pem')}\n`,
    keyPem: keys.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
  };
}
