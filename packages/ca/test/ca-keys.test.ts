import 'reflect-metadata';
import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
} from '@peculiar/x509';
import { x509Crypto } from '../src/crypto-provider.js';
import { afterAll, describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../src/authority.js';
import { CHAIN_BACKDATE_MS } from '../src/ca-keys.js';
import { startCaServer } from '../src/server.js';
import { makeTmpDir } from './support/ca-fixture.js';

const crypto = x509Crypto;
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});
const ISSUERS = [
  { issuerUrl: 'https://id.airlock.internal', type: 'spiffe' as const, trustDomain: 'airlock.internal' },
];

describe('CA key material', () => {
  it('generates an ECDSA P-256 root and intermediate with CA extensions', async () => {
    const before = Date.now();
    const ca = await CertificateAuthority.open({ dataDir: makeTmpDir('airlock-ca-keys-', dirs), issuers: ISSUERS });
    expect(ca.source).toBe('generated');
    const root = new X509Certificate(ca.rootPem);
    const intermediate = new X509Certificate(ca.intermediatePem);

    for (const cert of [root, intermediate]) {
      expect(cert.publicKey.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
      expect(cert.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } });
      expect(cert.subjectName.getField('O')).toEqual(['airlock']);
      expect(cert.subjectName.getField('CN')).toHaveLength(1);
    }
    expect(ca.subject).toEqual({ organization: 'airlock', commonName: 'airlock-root' });

    const rootBc = root.getExtension(BasicConstraintsExtension)!;
    expect(rootBc.ca).toBe(true);
    expect(rootBc.critical).toBe(true);
    expect(root.getExtension(KeyUsagesExtension)!.usages).toBe(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign);
    const rootSki = root.getExtension(SubjectKeyIdentifierExtension)!.keyId;
    expect(rootSki).toBe(Buffer.from(await root.publicKey.getKeyIdentifier(crypto)).toString('hex'));

    const intBc = intermediate.getExtension(BasicConstraintsExtension)!;
    expect(intBc.ca).toBe(true);
    expect(intBc.pathLength).toBe(0);
    expect(intermediate.getExtension(KeyUsagesExtension)!.usages & KeyUsageFlags.keyCertSign).toBeTruthy();
    expect(intermediate.getExtension(ExtendedKeyUsageExtension)!.usages).toEqual(['1.3.6.1.5.5.7.3.3']);
    expect(intermediate.getExtension(SubjectKeyIdentifierExtension)).not.toBeNull();
    expect(intermediate.getExtension(AuthorityKeyIdentifierExtension)!.keyId).toBe(rootSki);
    expect(intermediate.issuer).toBe(root.subject);
    expect(await intermediate.verify({ publicKey: root.publicKey, signatureOnly: true }, crypto)).toBe(true);

    // Validity: 10 y / 5 y, starting a little in the past.
    const yearMs = 365 * 24 * 3600 * 1000;
    expect(root.notAfter.getTime() - root.notBefore.getTime()).toBe(10 * yearMs);
    expect(intermediate.notAfter.getTime() - intermediate.notBefore.getTime()).toBe(5 * yearMs);
    expect(intermediate.notBefore.getTime()).toBeLessThanOrEqual(before - CHAIN_BACKDATE_MS + 1000);
    expect(ca.validFrom.getTime()).toBe(Math.max(root.notBefore.getTime(), intermediate.notBefore.getTime()));

    // chainDer is trusted_root order: intermediate then root.
    expect(ca.chainDer.map((d) => d.toString('base64'))).toEqual([
      Buffer.from(intermediate.rawData).toString('base64'),
      Buffer.from(root.rawData).toString('base64'),
    ]);
  });

  it('persists keys (0600) and reuses them on restart', async () => {
    const dataDir = makeTmpDir('airlock-ca-persist-', dirs);
    const first = await startCaServer({ dataDir, issuers: ISSUERS });
    const { rootPem, intermediatePem, validFrom } = first;
    await first.close();
    for (const f of ['root-key.pem', 'intermediate-key.pem']) {
      expect(fs.statSync(path.join(dataDir, 'ca', f)).mode & 0o777).toBe(0o600);
    }
    expect(fs.statSync(path.join(dataDir, 'ca', 'intermediate.pem')).mode & 0o077).toBe(0o044);

    const second = await startCaServer({ dataDir, issuers: ISSUERS });
    try {
      expect(second.ca.source).toBe('data-dir');
      expect(second.rootPem).toBe(rootPem);
      expect(second.intermediatePem).toBe(intermediatePem);
      expect(second.validFrom.getTime()).toBe(validFrom.getTime());
    } finally {
      await second.close();
    }
  });

  it('refuses a private key readable by others, and an incomplete CA directory', async () => {
    const dataDir = makeTmpDir('airlock-ca-perm-', dirs);
    await CertificateAuthority.open({ dataDir, issuers: ISSUERS });
    const keyFile = path.join(dataDir, 'ca', 'intermediate-key.pem');
    fs.chmodSync(keyFile, 0o644);
    await expect(CertificateAuthority.open({ dataDir, issuers: ISSUERS })).rejects.toMatchObject({
      code: 'CA_KEY_PERMISSIONS',
    });
    fs.rmSync(keyFile);
    await expect(CertificateAuthority.open({ dataDir, issuers: ISSUERS })).rejects.toMatchObject({
      code: 'CA_KEY_INVALID',
      message: expect.stringContaining('intermediate-key.pem'),
    });
  });

  it('loads an operator-provided chain and checks that it hangs together', async () => {
    const source = makeTmpDir('airlock-ca-op-src-', dirs);
    const generated = await CertificateAuthority.open({ dataDir: source, issuers: ISSUERS });
    const caDir = path.join(source, 'ca');
    const operator = {
      rootCertPath: path.join(caDir, 'root.pem'),
      intermediateCertPath: path.join(caDir, 'intermediate.pem'),
      intermediateKeyPath: path.join(caDir, 'intermediate-key.pem'),
    };
    const emptyDataDir = makeTmpDir('airlock-ca-op-', dirs);
    const loaded = await CertificateAuthority.open({ dataDir: emptyDataDir, issuers: ISSUERS, ...operator });
    expect(loaded.source).toBe('operator');
    expect(loaded.rootPem).toBe(generated.rootPem);
    expect(fs.existsSync(path.join(emptyDataDir, 'ca'))).toBe(false);

    // All three paths or none.
    await expect(
      CertificateAuthority.open({ dataDir: emptyDataDir, issuers: ISSUERS, rootCertPath: operator.rootCertPath }),
    ).rejects.toMatchObject({ code: 'CA_CONFIG_INVALID' });

    // A key that is not the intermediate's.
    const strayKey = path.join(emptyDataDir, 'stray.pem');
    fs.writeFileSync(
      strayKey,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }),
      { mode: 0o600 },
    );
    await expect(
      CertificateAuthority.open({
        dataDir: emptyDataDir,
        issuers: ISSUERS,
        ...operator,
        intermediateKeyPath: strayKey,
      }),
    ).rejects.toMatchObject({ code: 'CA_KEY_INVALID', message: expect.stringContaining('does not match') });

    // An intermediate from another CA under this root.
    const foreign = makeTmpDir('airlock-ca-op-foreign-', dirs);
    await CertificateAuthority.open({ dataDir: foreign, issuers: ISSUERS });
    await expect(
      CertificateAuthority.open({
        dataDir: emptyDataDir,
        issuers: ISSUERS,
        ...operator,
        intermediateCertPath: path.join(foreign, 'ca', 'intermediate.pem'),
        intermediateKeyPath: path.join(foreign, 'ca', 'intermediate-key.pem'),
      }),
    ).rejects.toMatchObject({ code: 'CA_KEY_INVALID' });

    // Same names (both CAs are "airlock-root"), different keys: the signature check is what refuses it.
    await expect(
      CertificateAuthority.open({
        dataDir: emptyDataDir,
        issuers: ISSUERS,
        ...operator,
        rootCertPath: path.join(foreign, 'ca', 'root.pem'),
      }),
    ).rejects.toMatchObject({ code: 'CA_KEY_INVALID', message: expect.stringContaining('not signed by root') });
  });

  it('validates its configuration', async () => {
    const dataDir = makeTmpDir('airlock-ca-cfg-', dirs);
    await expect(CertificateAuthority.open({ dataDir, issuers: [] })).rejects.toMatchObject({
      code: 'CA_CONFIG_INVALID',
    });
    await expect(
      CertificateAuthority.open({ dataDir, issuers: [{ issuerUrl: 'https://x', type: 'spiffe' }] }),
    ).rejects.toMatchObject({ code: 'CA_CONFIG_INVALID' });
    await expect(
      CertificateAuthority.open({ dataDir, issuers: ISSUERS, certValiditySeconds: 0 }),
    ).rejects.toMatchObject({
      code: 'CA_CONFIG_INVALID',
    });
    await expect(CertificateAuthority.open({ dataDir, issuers: ISSUERS, organization: '' })).rejects.toMatchObject({
      code: 'CA_CONFIG_INVALID',
    });
  });
});
