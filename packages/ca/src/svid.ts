import './reflect-polyfill.js';
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseSpiffeId, validateTrustDomain, type X509Svid } from '@airlock/identity';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { CHAIN_BACKDATE_MS } from './ca-keys.js';
import {
  keyIdentifierHex,
  randomSerialHex,
  selfSignedCaCertificate,
  SIGNING_ALGORITHM,
  toSigningKey,
  x509Crypto,
} from './crypto-provider.js';
import { CaError } from './errors.js';

/** A SPIFFE X.509 CA (trust-domain signing certificate + its ECDSA P-256 key). */
export interface SvidCa {
  trustDomain: string;
  certificatePem: string;
  privateKey: KeyObject;
}

export const SVID_CA_DIR = 'svid-ca';
export const DEFAULT_SVID_TTL_SECONDS = 3600;
const MAX_SVID_TTL_SECONDS = 24 * 3600;
const SVID_CA_VALIDITY_MS = 5 * 365 * 24 * 3600 * 1000;

/** Generates a self-signed SPIFFE CA whose URI SAN is the trust domain's ID (X509-SVID spec §3). */
export async function createSvidCa(options: { trustDomain: string; now?: Date }): Promise<SvidCa> {
  const td = validateTrustDomain(options.trustDomain);
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const cert = await selfSignedCaCertificate({
    name: new Name([{ O: ['airlock'] }, { CN: [`${td} SPIFFE CA`] }]),
    keys,
    notBefore: new Date((options.now ?? new Date()).getTime() - CHAIN_BACKDATE_MS),
    validityMs: SVID_CA_VALIDITY_MS,
    pathLength: 0,
    extensions: [new SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${td}` }], false)],
  });
  return { trustDomain: td, certificatePem: cert.toString('pem') + '\n', privateKey: keys.privateKey };
}

/** Loads `<dataDir>/svid-ca/` (key must be 0600) or creates it: where the plane keeps its SPIFFE CA. */
export async function loadOrCreateSvidCa(dataDir: string, trustDomain: string): Promise<SvidCa> {
  const dir = path.join(dataDir, SVID_CA_DIR);
  const certFile = path.join(dir, 'ca.pem');
  const keyFile = path.join(dir, 'ca-key.pem');
  if (!fs.existsSync(certFile)) {
    const ca = await createSvidCa({ trustDomain });
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(keyFile, ca.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
    fs.writeFileSync(certFile, ca.certificatePem, { mode: 0o644, flag: 'wx' });
    return ca;
  }
  if ((fs.statSync(keyFile).mode & 0o077) !== 0)
    throw new CaError('CA_KEY_INVALID', `SPIFFE CA key ${keyFile} is readable by group/others; expected 0600`);
  return {
    trustDomain: validateTrustDomain(trustDomain),
    certificatePem: fs.readFileSync(certFile, 'utf8'),
    privateKey: createPrivateKey(fs.readFileSync(keyFile)),
  };
}

export interface IssueX509SvidOptions {
  spiffeId: string;
  /** The workload's public key (PEM SPKI or KeyObject); without it a P-256 key is generated and returned. */
  publicKey?: KeyObject | string;
  /** Lifetime in seconds (default 3600, at most one day). */
  ttlSeconds?: number;
  ca: SvidCa;
  hint?: string;
  now?: Date;
}

/**
 * Issues an X509-SVID (https://github.com/spiffe/spiffe/blob/main/standards/X509-SVID.md): the SPIFFE ID as the only
 * URI SAN, not a CA, digitalSignature, serverAuth + clientAuth, short-lived; returned as the Workload API's message.
 */
export async function issueX509Svid(options: IssueX509SvidOptions): Promise<X509Svid> {
  const id = parseSpiffeId(options.spiffeId);
  if (id.trustDomain !== options.ca.trustDomain)
    throw new CaError('SVID_REQUEST_INVALID', `${id.id} is not in the CA's trust domain ${options.ca.trustDomain}`);
  const ttl = options.ttlSeconds ?? DEFAULT_SVID_TTL_SECONDS;
  if (!Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_SVID_TTL_SECONDS)
    throw new CaError('SVID_REQUEST_INVALID', `ttlSeconds must be an integer in 1..${MAX_SVID_TTL_SECONDS}`);
  const generated = options.publicKey === undefined ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : undefined;
  const publicKey = generated?.publicKey ?? createPublicKey(options.publicKey!);
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const caCert = new X509Certificate(options.ca.certificatePem);
  const notBefore = new Date(Math.floor((options.now ?? new Date()).getTime() / 1000) * 1000);
  const notAfter = new Date(notBefore.getTime() + ttl * 1000);
  if (notAfter > caCert.notAfter) throw new CaError('CA_NOT_VALID_NOW', 'the SPIFFE CA expires before this SVID');
  const leaf = await X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: new Name([{ O: ['airlock'] }]),
      issuer: caCert.subjectName,
      notBefore,
      notAfter,
      publicKey: spki,
      signingKey: await toSigningKey(options.ca.privateKey),
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(false, undefined, true),
        new KeyUsagesExtension(KeyUsageFlags.digitalSignature | KeyUsageFlags.keyAgreement, true),
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth, ExtendedKeyUsage.clientAuth], false),
        new SubjectKeyIdentifierExtension(await keyIdentifierHex(spki)),
        new AuthorityKeyIdentifierExtension(await keyIdentifierHex(new Uint8Array(caCert.publicKey.rawData))),
        new SubjectAlternativeNameExtension([{ type: 'url', value: id.id }], false),
      ],
    },
    x509Crypto,
  );
  const caDer = Buffer.from(caCert.rawData);
  return {
    spiffe_id: id.id,
    x509_svid: Buffer.from(leaf.rawData),
    ...(generated ? { x509_svid_key: generated.privateKey.export({ format: 'der', type: 'pkcs8' }) } : {}),
    bundle: caDer,
    hint: options.hint ?? '',
    expires_at: notAfter.getTime() / 1000,
  };
}
