import { createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { privateKeyFileProblem } from '@airlock/core';
import { IdentityError } from './errors.js';

/**
 * Loads the issuer's P-256 private key from `file`, or creates it (PKCS#8 PEM, mode 0600) when absent.
 * Creation writes a temp file and hard-links it into place, so two processes starting together never see a
 * half-written key and the loser simply loads the winner's key.
 */
export function loadOrCreateP256Key(file: string): { privateKey: KeyObject; created: boolean } {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  if (!keyFileExists(file)) {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      fs.writeFileSync(tmp, pem, { mode: 0o600, flag: 'wx' });
      fs.chmodSync(tmp, 0o600); // mode above is subject to umask; make it exact
      try {
        fs.linkSync(tmp, file);
        return { privateKey: checkP256(createPrivateKey(pem), file), created: true };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    } finally {
      fs.rmSync(tmp, { force: true });
    }
  }
  return { privateKey: readP256Key(file), created: false };
}

/**
 * Whether the key file exists. "Cannot look" (the plane's directory belongs to its service user) is not "absent":
 * that caller must neither create a second key nor see a raw EACCES, but learn it is not the key's owner.
 */
function keyFileExists(file: string): boolean {
  try {
    fs.statSync(file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return false;
    if (code === 'EACCES' || code === 'EPERM') throw unreadable(file);
    throw err;
  }
}

function unreadable(file: string): IdentityError {
  return new IdentityError(
    'IDENTITY_KEY_UNREADABLE',
    `identity signing key ${file} is not readable by uid ${process.getuid?.() ?? '?'}: the plane's keys belong to ` +
      'its service user. Workloads get identities from the attestation agent (airlock identity agent)',
  );
}

function readP256Key(file: string): KeyObject {
  const problem = privateKeyFileProblem(file, 'identity signing key');
  if (problem) {
    throw new IdentityError(
      problem.kind === 'type' ? 'IDENTITY_KEY_INVALID' : 'IDENTITY_KEY_PERMISSIONS',
      problem.message,
    );
  }
  let pem: Buffer;
  try {
    pem = fs.readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw unreadable(file);
    throw err;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new IdentityError('IDENTITY_KEY_INVALID', `identity signing key ${file} is not a PEM private key`, {
      cause: err,
    });
  }
  return checkP256(key, file);
}

function checkP256(key: KeyObject, file: string): KeyObject {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new IdentityError('IDENTITY_KEY_INVALID', `identity signing key ${file} must be an ECDSA P-256 key (ES256)`);
  }
  return key;
}
