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
  if (!fs.existsSync(file)) {
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

function readP256Key(file: string): KeyObject {
  const problem = privateKeyFileProblem(file, 'identity signing key');
  if (problem) {
    throw new IdentityError(
      problem.kind === 'type' ? 'IDENTITY_KEY_INVALID' : 'IDENTITY_KEY_PERMISSIONS',
      problem.message,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(fs.readFileSync(file));
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
