import './reflect-polyfill.js';
import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  webcrypto,
  type KeyObject,
} from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  PublicKey,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import { privateKeyFileProblem } from '@airlock/core';
import { TsaError } from './errors.js';

/** Files under `<dataDir>/tsa/`: the chain (public) and the timestamping key (0600). The root key is not kept. */
export const TSA_DIR = 'tsa';
export const TSA_ROOT_CERT_FILE = 'root.pem';
export const TSA_CERT_FILE = 'tsa.pem';
export const TSA_KEY_FILE = 'tsa-key.pem';

const YEAR_MS = 365 * 24 * 3600 * 1000;
/** Backdated so that a slightly slow clock elsewhere still sees the chain as valid. */
const BACKDATE_MS = 60 * 60 * 1000;

/** The timestamping key and its chain, leaf first, root (the anchor) last. */
export interface TsaMaterial {
  key: KeyObject;
  chain: X509Certificate[];
}

export interface TsaChainOptions {
  /** Organization in the generated names (default `airlock`). */
  organization?: string;
  notBefore?: Date;
  notAfter?: Date;
  /** Leaf EKU: `critical` (RFC 3161 §2.3, the default) or `absent` (to build refused chains in tests). */
  timestampingEku?: 'critical' | 'absent';
}

const x509Crypto = webcrypto as unknown as NonNullable<Parameters<typeof X509CertificateGenerator.create>[1]>;
const ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

type WebCryptoKey = Awaited<ReturnType<typeof x509Crypto.subtle.importKey>>;

async function signingKey(privateKey: KeyObject): Promise<WebCryptoKey> {
  const pkcs8 = privateKey.export({ format: 'der', type: 'pkcs8' });
  return x509Crypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

async function keyId(spki: Buffer): Promise<string> {
  return Buffer.from(await new PublicKey(spki).getKeyIdentifier(x509Crypto)).toString('hex');
}

function serial(): string {
  const b = randomBytes(20);
  b[0] = (b[0]! & 0x7f) | 0x01; // positive, no leading zero octet (RFC 5280 §4.1.2.2)
  return b.toString('hex');
}

/**
 * A fresh ECDSA P-256 root and timestamping leaf (critical EKU id-kp-timeStamping, KeyUsage digitalSignature).
 * P-256 because @sigstore/verify@3 checks ECDSA with SHA-256 whatever the curve. The root key exists only here.
 */
export async function createTsaMaterial(options: TsaChainOptions = {}): Promise<TsaMaterial> {
  const org = options.organization ?? 'airlock';
  const notBefore = options.notBefore ?? new Date(Date.now() - BACKDATE_MS);
  const rootNotAfter = new Date(notBefore.getTime() + 10 * YEAR_MS);
  const leafNotAfter = options.notAfter ?? new Date(notBefore.getTime() + 5 * YEAR_MS);
  const rootKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const leafKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const rootSpki = rootKeys.publicKey.export({ format: 'der', type: 'spki' });
  const leafSpki = leafKeys.publicKey.export({ format: 'der', type: 'spki' });
  const rootName = new Name([{ O: [org] }, { CN: [`${org}-tsa-root`] }]);
  const rootId = await keyId(rootSpki);
  const root = await X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: rootName,
      issuer: rootName,
      notBefore,
      notAfter: options.notAfter && options.notAfter < rootNotAfter ? options.notAfter : rootNotAfter,
      publicKey: rootSpki,
      signingKey: await signingKey(rootKeys.privateKey),
      signingAlgorithm: ALG,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        new SubjectKeyIdentifierExtension(rootId),
      ],
    },
    x509Crypto,
  );
  const extensions: Extension[] = [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    new SubjectKeyIdentifierExtension(await keyId(leafSpki)),
    new AuthorityKeyIdentifierExtension(rootId),
  ];
  if ((options.timestampingEku ?? 'critical') === 'critical')
    extensions.push(new ExtendedKeyUsageExtension([ExtendedKeyUsage.timeStamping], true));
  const leaf = await X509CertificateGenerator.create(
    {
      serialNumber: serial(),
      subject: new Name([{ O: [org] }, { CN: [`${org}-tsa`] }]),
      issuer: root.subjectName,
      notBefore,
      notAfter: leafNotAfter,
      publicKey: leafSpki,
      signingKey: await signingKey(rootKeys.privateKey),
      signingAlgorithm: ALG,
      extensions,
    },
    x509Crypto,
  );
  return { key: leafKeys.privateKey, chain: [leaf, root] };
}

/**
 * Loads `<dataDir>/tsa/` (the key must be 0600 and ours, like the plane's other keys) or creates it on first start,
 * written to a private temp directory and renamed into place so a half-written chain is never seen.
 */
export async function loadOrCreateTsaMaterial(dataDir: string, options: TsaChainOptions = {}): Promise<TsaMaterial> {
  const dir = path.join(dataDir, TSA_DIR);
  if (!fs.existsSync(dir)) {
    const material = await createTsaMaterial(options);
    const tmp = fs.mkdtempSync(path.join(dataDir, '.tsa-'));
    fs.writeFileSync(path.join(tmp, TSA_ROOT_CERT_FILE), material.chain[1]!.toString('pem') + '\n', { mode: 0o644 });
    fs.writeFileSync(path.join(tmp, TSA_CERT_FILE), material.chain[0]!.toString('pem') + '\n', { mode: 0o644 });
    const pem = material.key.export({ format: 'pem', type: 'pkcs8' }) as string;
    fs.writeFileSync(path.join(tmp, TSA_KEY_FILE), pem, { mode: 0o600 });
    try {
      fs.renameSync(tmp, dir);
      return material;
    } catch {
      fs.rmSync(tmp, { recursive: true, force: true }); // another process created it first: use theirs
    }
  }
  return readTsaMaterial(dir);
}

function readTsaMaterial(dir: string): TsaMaterial {
  const keyFile = path.join(dir, TSA_KEY_FILE);
  const problem = fs.existsSync(keyFile) ? privateKeyFileProblem(keyFile, 'TSA private key') : undefined;
  if (problem) throw new TsaError(problem.kind === 'type' ? 'TSA_KEY_INVALID' : 'TSA_KEY_PERMISSIONS', problem.message);
  let material: TsaMaterial;
  try {
    material = {
      key: createPrivateKey(fs.readFileSync(keyFile)),
      chain: [TSA_CERT_FILE, TSA_ROOT_CERT_FILE].map(
        (f) => new X509Certificate(fs.readFileSync(path.join(dir, f), 'utf8')),
      ),
    };
  } catch (cause) {
    throw new TsaError('TSA_KEY_INVALID', `cannot read the TSA key or chain in ${dir}`, { cause });
  }
  const pub = createPublicKey(material.key).export({ format: 'der', type: 'spki' });
  if (!Buffer.from(material.chain[0]!.publicKey.rawData).equals(pub))
    throw new TsaError('TSA_KEY_INVALID', `${keyFile} does not belong to the certificate ${TSA_CERT_FILE}`);
  return material;
}
