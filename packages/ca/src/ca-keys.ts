import './reflect-polyfill.js';
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '@peculiar/x509';
import {
  keyIdentifierHex,
  randomSerialHex,
  selfSignedCaCertificate,
  SIGNING_ALGORITHM,
  toSigningKey,
  x509Crypto,
  type WebCryptoKey,
} from './crypto-provider.js';
import { CaError } from './errors.js';
import { privateKeyFileProblem } from '@airlock/core';
import { signerHandle, type CaKeySigner, type X509Crypto } from './key-signer.js';

/** Files under `<dataDir>/ca/`. */
export const CA_DIR = 'ca';
export const ROOT_CERT_FILE = 'root.pem';
export const ROOT_KEY_FILE = 'root-key.pem';
export const INTERMEDIATE_CERT_FILE = 'intermediate.pem';
export const INTERMEDIATE_KEY_FILE = 'intermediate-key.pem';

const YEAR_MS = 365 * 24 * 3600 * 1000;
export const ROOT_VALIDITY_MS = 10 * YEAR_MS;
export const INTERMEDIATE_VALIDITY_MS = 5 * YEAR_MS;
/** Chain validity starts this far in the past so machines with a slow clock accept fresh certificates. */
export const CHAIN_BACKDATE_MS = 60 * 60 * 1000;

export interface CaKeyOptions {
  dataDir: string;
  /** Operator-provided chain; all three or none. */
  rootCertPath?: string;
  intermediateCertPath?: string;
  intermediateKeyPath?: string;
  /** Organization in generated CA names (default `airlock`). */
  organization?: string;
  now?: Date;
  /**
   * The intermediate's key in a token (PKCS#11): no CA key is ever written. The chain certificates live in
   * `<dataDir>/ca/` (root.pem, intermediate.pem), created on first start with a root key that exists only in memory.
   */
  intermediateSigner?: CaKeySigner;
}

export interface CaMaterial {
  root: X509Certificate;
  intermediate: X509Certificate;
  /** WebCrypto handle on the intermediate's ECDSA P-256 key (non-extractable). */
  signingKey: WebCryptoKey;
  /** The WebCrypto provider that signs with `signingKey` (Node's, or a token signer's wrapper). */
  signingCrypto: X509Crypto;
  /** Hex SKI of the intermediate, used as the leaves' AKI. */
  intermediateKeyId: string;
  source: 'generated' | 'data-dir' | 'operator' | 'token';
}

/**
 * Loads the CA chain from operator files, else from `<dataDir>/ca/`, else generates a fresh ECDSA P-256 root and
 * intermediate there. P-256 because @sigstore/verify@3 checks ECDSA signatures with SHA-256 whatever the curve.
 */
export async function loadOrCreateCaMaterial(options: CaKeyOptions): Promise<CaMaterial> {
  const now = options.now ?? new Date();
  if (options.intermediateSigner) return loadOrCreateTokenChain(options, options.intermediateSigner, now);
  const operator = [options.rootCertPath, options.intermediateCertPath, options.intermediateKeyPath];
  if (operator.some((p) => p !== undefined)) {
    if (operator.some((p) => p === undefined)) {
      throw new CaError(
        'CA_CONFIG_INVALID',
        'rootCertPath, intermediateCertPath and intermediateKeyPath must be given together',
      );
    }
    return loadChain(
      options.rootCertPath!,
      options.intermediateCertPath!,
      options.intermediateKeyPath!,
      now,
      'operator',
    );
  }
  const dir = path.join(options.dataDir, CA_DIR);
  const files = [ROOT_CERT_FILE, ROOT_KEY_FILE, INTERMEDIATE_CERT_FILE, INTERMEDIATE_KEY_FILE];
  const present = files.filter((f) => fs.existsSync(path.join(dir, f)));
  if (present.length === 0) {
    const created = await generateInto(dir, options.organization ?? 'airlock', now);
    if (created) {
      const material = await loadFromDir(dir, now);
      return { ...material, source: 'generated' };
    }
  } else if (present.length !== files.length) {
    // Never silently replace part of a CA: a new root would orphan every certificate already issued.
    const missing = files.filter((f) => !present.includes(f));
    throw new CaError(
      'CA_KEY_INVALID',
      `CA directory ${dir} is incomplete (missing ${missing.join(', ')}); restore it or remove it`,
    );
  }
  return loadFromDir(dir, now);
}

function loadFromDir(dir: string, now: Date): Promise<CaMaterial> {
  // The root key is never read while serving, but it is the most valuable file here: hold it to the same rule.
  assertPrivateKeyFile(path.join(dir, ROOT_KEY_FILE));
  return loadChain(
    path.join(dir, ROOT_CERT_FILE),
    path.join(dir, INTERMEDIATE_CERT_FILE),
    path.join(dir, INTERMEDIATE_KEY_FILE),
    now,
    'data-dir',
  );
}

async function loadChain(
  rootPath: string,
  intermediatePath: string,
  keyPath: string,
  now: Date,
  source: CaMaterial['source'],
): Promise<CaMaterial> {
  const root = readCertificate(rootPath);
  const intermediate = readCertificate(intermediatePath);
  const key = readPrivateKey(keyPath);

  if (!(await root.verify({ signatureOnly: true }, x509Crypto))) {
    throw new CaError('CA_KEY_INVALID', `root certificate ${rootPath} is not self-signed`);
  }
  requireCa(root, rootPath);
  requireCa(intermediate, intermediatePath);
  if (!sameBytes(intermediate.issuerName.toArrayBuffer(), root.subjectName.toArrayBuffer())) {
    throw new CaError(
      'CA_KEY_INVALID',
      `intermediate ${intermediatePath} is not issued by root ${rootPath} (names differ)`,
    );
  }
  if (!(await intermediate.verify({ publicKey: root.publicKey, signatureOnly: true }, x509Crypto))) {
    throw new CaError('CA_KEY_INVALID', `intermediate ${intermediatePath} is not signed by root ${rootPath}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new CaError('CA_KEY_INVALID', `intermediate key ${keyPath} must be an ECDSA P-256 private key`);
  }
  const keySpki = createPublicKeyDer(key);
  if (!sameBytes(keySpki, intermediate.publicKey.rawData)) {
    throw new CaError('CA_KEY_INVALID', `intermediate key ${keyPath} does not match certificate ${intermediatePath}`);
  }
  for (const [cert, file] of [
    [root, rootPath],
    [intermediate, intermediatePath],
  ] as const) {
    if (cert.notAfter.getTime() <= now.getTime())
      throw new CaError('CA_KEY_INVALID', `certificate ${file} expired at ${cert.notAfter.toISOString()}`);
  }
  const ski = intermediate.getExtension(SubjectKeyIdentifierExtension);
  const intermediateKeyId = ski ? ski.keyId : await keyIdentifierHex(keySpki);
  return {
    root,
    intermediate,
    signingKey: await toSigningKey(key),
    signingCrypto: x509Crypto,
    intermediateKeyId,
    source,
  };
}

function requireCa(cert: X509Certificate, file: string): void {
  const bc = cert.getExtension(BasicConstraintsExtension);
  const ku = cert.getExtension(KeyUsagesExtension);
  if (!bc?.ca)
    throw new CaError('CA_KEY_INVALID', `certificate ${file} is not a CA (basicConstraints CA:TRUE missing)`);
  if (ku && (ku.usages & KeyUsageFlags.keyCertSign) === 0) {
    throw new CaError('CA_KEY_INVALID', `certificate ${file} lacks the keyCertSign key usage`);
  }
}

function readCertificate(file: string): X509Certificate {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new CaError('CA_KEY_INVALID', `cannot read certificate ${file}`, { cause: err });
  }
  try {
    return new X509Certificate(text);
  } catch (err) {
    throw new CaError('CA_KEY_INVALID', `${file} is not a PEM X.509 certificate`, { cause: err });
  }
}

function readPrivateKey(file: string): KeyObject {
  assertPrivateKeyFile(file);
  try {
    return createPrivateKey(fs.readFileSync(file));
  } catch (err) {
    throw new CaError('CA_KEY_INVALID', `${file} is not a PEM private key`, { cause: err });
  }
}

/** Refuses a private key file that is not 0600 and owned by this process's user (issue 10 §1). */
function assertPrivateKeyFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new CaError('CA_KEY_INVALID', `cannot read private key ${file}`, { cause: err });
  }
  const problem = privateKeyFileProblem(file, 'CA private key', st);
  if (problem) throw new CaError(problem.kind === 'type' ? 'CA_KEY_INVALID' : 'CA_KEY_PERMISSIONS', problem.message);
}

function createPublicKeyDer(key: KeyObject): Buffer {
  // createPublicKey on a private KeyObject yields its public half.
  return createPublicKey(key).export({ format: 'der', type: 'spki' });
}

function sameBytes(a: ArrayBuffer | Uint8Array, b: ArrayBuffer | Uint8Array): boolean {
  return Buffer.from(a as ArrayBuffer).equals(Buffer.from(b as ArrayBuffer));
}

function validateOrganization(org: string): string {
  if (typeof org !== 'string' || org.length === 0 || org.length > 64 || !/^[\x20-\x7e]+$/.test(org)) {
    throw new CaError('CA_CONFIG_INVALID', 'organization must be 1-64 printable ASCII characters');
  }
  return org;
}

/**
 * Generates root + intermediate into a private temp directory and renames it into place: atomic, and if another
 * process won the race its CA is kept (returns false) and ours discarded.
 */
async function generateInto(dir: string, organization: string, now: Date): Promise<boolean> {
  const org = validateOrganization(organization);
  const rootKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const intKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const intSpki = intKeys.publicKey.export({ format: 'der', type: 'spki' });
  const { root, intermediate } = await createChain(org, rootKeys, intSpki, now);
  return writeCaDir(dir, [
    [ROOT_CERT_FILE, root.toString('pem') + '\n', 0o644],
    [ROOT_KEY_FILE, rootKeys.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600],
    [INTERMEDIATE_CERT_FILE, intermediate.toString('pem') + '\n', 0o644],
    [INTERMEDIATE_KEY_FILE, intKeys.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 0o600],
  ]);
}

/** Root (self-signed with `rootKeys`) and an intermediate for the public key `intSpki`, signed by the root. */
async function createChain(
  org: string,
  rootKeys: { publicKey: KeyObject; privateKey: KeyObject },
  intSpki: Buffer,
  now: Date,
): Promise<{ root: X509Certificate; intermediate: X509Certificate }> {
  const notBefore = new Date(now.getTime() - CHAIN_BACKDATE_MS);
  const root = await selfSignedCaCertificate({
    name: new Name([{ O: [org] }, { CN: [`${org}-root`] }]),
    keys: rootKeys,
    notBefore,
    validityMs: ROOT_VALIDITY_MS,
    pathLength: 1,
  });
  const rootKeyId = await keyIdentifierHex(rootKeys.publicKey.export({ format: 'der', type: 'spki' }));

  const intermediate = await X509CertificateGenerator.create(
    {
      serialNumber: randomSerialHex(),
      subject: new Name([{ O: [org] }, { CN: [`${org}-intermediate`] }]),
      issuer: root.subjectName,
      notBefore,
      notAfter: new Date(notBefore.getTime() + INTERMEDIATE_VALIDITY_MS),
      publicKey: intSpki,
      signingKey: await toSigningKey(rootKeys.privateKey),
      signingAlgorithm: SIGNING_ALGORITHM,
      extensions: [
        new BasicConstraintsExtension(true, 0, true),
        new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
        // As Fulcio's intermediate: restricts the CA to code-signing leaves.
        new ExtendedKeyUsageExtension([ExtendedKeyUsage.codeSigning], false),
        new SubjectKeyIdentifierExtension(await keyIdentifierHex(intSpki)),
        new AuthorityKeyIdentifierExtension(rootKeyId),
      ],
    },
    x509Crypto,
  );
  return { root, intermediate };
}

/**
 * Writes `files` into a private temp directory and renames it to `dir`: atomic, and if another process won the
 * race its CA is kept (returns false) and ours discarded.
 */
function writeCaDir(dir: string, files: [name: string, data: string, mode: number][]): boolean {
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  fs.mkdirSync(tmp, { mode: 0o700 });
  try {
    for (const [name, data, mode] of files) {
      fs.writeFileSync(path.join(tmp, name), data, { mode, flag: 'wx' });
      fs.chmodSync(path.join(tmp, name), mode);
    }
    try {
      fs.renameSync(tmp, dir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
      throw err;
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The chain for a token-held intermediate key. First start: a root key generated in memory signs the root and an
 * intermediate for the token's public key, then is dropped — only the two certificates are written, so no CA key
 * ever sits in a file (a new intermediate later needs a new root). Later starts: the certificates are loaded and the
 * intermediate must carry the token key.
 */
async function loadOrCreateTokenChain(options: CaKeyOptions, signer: CaKeySigner, now: Date): Promise<CaMaterial> {
  const dir = path.join(options.dataDir, CA_DIR);
  const rootPath = path.join(dir, ROOT_CERT_FILE);
  const intPath = path.join(dir, INTERMEDIATE_CERT_FILE);
  let source: CaMaterial['source'] = 'token';
  if (!fs.existsSync(rootPath) && !fs.existsSync(intPath)) {
    const org = validateOrganization(options.organization ?? 'airlock');
    const rootKeys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { root, intermediate } = await createChain(org, rootKeys, signer.spkiDer, now);
    writeCaDir(dir, [
      [ROOT_CERT_FILE, root.toString('pem') + '\n', 0o644],
      [INTERMEDIATE_CERT_FILE, intermediate.toString('pem') + '\n', 0o644],
    ]);
    source = 'generated';
  }
  const root = readCertificate(rootPath);
  const intermediate = readCertificate(intPath);
  requireCa(root, rootPath);
  requireCa(intermediate, intPath);
  if (!(await intermediate.verify({ publicKey: root.publicKey, signatureOnly: true }, x509Crypto)))
    throw new CaError('CA_KEY_INVALID', `intermediate ${intPath} is not signed by root ${rootPath}`);
  if (!sameBytes(signer.spkiDer, intermediate.publicKey.rawData)) {
    throw new CaError(
      'CA_KEY_INVALID',
      `the token key given as the CA key does not match the intermediate certificate ${intPath}`,
    );
  }
  for (const [cert, file] of [
    [root, rootPath],
    [intermediate, intPath],
  ] as const) {
    if (cert.notAfter.getTime() <= now.getTime())
      throw new CaError('CA_KEY_INVALID', `certificate ${file} expired at ${cert.notAfter.toISOString()}`);
  }
  const ski = intermediate.getExtension(SubjectKeyIdentifierExtension);
  const intermediateKeyId = ski ? ski.keyId : await keyIdentifierHex(signer.spkiDer);
  const handle = signerHandle(signer);
  return { root, intermediate, signingKey: handle.key, signingCrypto: handle.crypto, intermediateKeyId, source };
}
