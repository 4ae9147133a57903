import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, webcrypto } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startIdentityIssuer, type IdentityIssuerServer } from '@airlock/identity';
import {
  AuthorityKeyIdentifierExtension,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Pkcs10CertificateRequestGenerator,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509ChainBuilder,
} from '@peculiar/x509';
import { SignJWT } from 'jose';
import { x509Crypto } from '../src/crypto-provider.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseDerUtf8String } from '../src/der.js';
import { CertificateAuthority } from '../src/authority.js';
import { FULCIO_OID } from '../src/extensions.js';
import { startCaServer, type CaServer } from '../src/server.js';
import {
  chainOf,
  makeTmpDir,
  p256,
  postJson,
  proofOfPossession,
  signingCertBody,
  type RequestKey,
} from './support/ca-fixture.js';
import { flipSignatureByte, startFakeOidcIssuer, unsignedToken, type FakeOidcIssuer } from '@airlock/testkit';

const crypto = x509Crypto;
const SUBJECT = 'spiffe://airlock.internal/ci/runner-1';
const dirs: string[] = [];

let issuerA: IdentityIssuerServer; // trusted, airlock.internal
let issuerB: IdentityIssuerServer; // trusted, build.corp
let rogue: IdentityIssuerServer; // running, not configured
let emailIssuer: FakeOidcIssuer; // trusted, email type
let ca: CaServer;

beforeAll(async () => {
  issuerA = await startIdentityIssuer({ dataDir: makeTmpDir('airlock-ca-idA-', dirs) });
  issuerB = await startIdentityIssuer({ dataDir: makeTmpDir('airlock-ca-idB-', dirs), trustDomain: 'build.corp' });
  rogue = await startIdentityIssuer({ dataDir: makeTmpDir('airlock-ca-rogue-', dirs) });
  emailIssuer = await startFakeOidcIssuer();
  ca = await startCaServer({
    dataDir: makeTmpDir('airlock-ca-', dirs),
    issuers: [
      { issuerUrl: issuerA.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true },
      { issuerUrl: issuerB.url, type: 'spiffe', trustDomain: 'build.corp', allowInsecureHttp: true },
      { issuerUrl: emailIssuer.url, type: 'email', allowInsecureHttp: true },
    ],
  });
});

afterAll(async () => {
  await Promise.all([ca?.close(), issuerA?.close(), issuerB?.close(), rogue?.close(), emailIssuer?.close()]);
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

async function issueLeaf(token: string, identity: string, key: RequestKey = p256()): Promise<X509Certificate> {
  const { status, json } = await postJson(ca.url, signingCertBody(token, key, identity));
  expect(status, JSON.stringify(json)).toBe(201);
  return new X509Certificate(chainOf(json)[0]!);
}

describe('POST /api/v2/signingCert', () => {
  it('issues a Fulcio-shaped leaf for a SPIFFE workload', async () => {
    const key = p256();
    const before = Math.floor(Date.now() / 1000) * 1000;
    const token = await issuerA.issueToken({ subject: SUBJECT });
    const { status, json } = await postJson(ca.url, signingCertBody(token, key, SUBJECT));
    expect(status).toBe(201);
    expect(Object.keys(json)).toEqual(['signedCertificateDetachedSct']);
    const chain = chainOf(json);
    expect(chain).toHaveLength(3);
    expect(chain[1]).toBe(ca.intermediatePem);
    expect(chain[2]).toBe(ca.rootPem);

    const leaf = new X509Certificate(chain[0]!);
    const intermediate = new X509Certificate(chain[1]!);
    const root = new X509Certificate(chain[2]!);

    // Validity: exactly 10 minutes starting now.
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe(600_000);
    expect(leaf.notBefore.getTime()).toBeGreaterThanOrEqual(before);
    expect(leaf.notBefore.getTime()).toBeLessThanOrEqual(Date.now());

    // Empty subject, one critical URI SAN.
    expect(leaf.subject).toBe('');
    const san = leaf.getExtension(SubjectAlternativeNameExtension)!;
    expect(san.critical).toBe(true);
    expect(san.names.items.map((n) => [n.type, n.value])).toEqual([['url', SUBJECT]]);

    // KeyUsage digitalSignature (critical, nothing else), EKU codeSigning.
    const ku = leaf.getExtension(KeyUsagesExtension)!;
    expect(ku.critical).toBe(true);
    expect(ku.usages).toBe(KeyUsageFlags.digitalSignature);
    expect(leaf.getExtension(ExtendedKeyUsageExtension)!.usages).toEqual(['1.3.6.1.5.5.7.3.3']);

    // SKI of the submitted key; AKI = intermediate SKI.
    const ski = leaf.getExtension(SubjectKeyIdentifierExtension)!;
    expect(ski.keyId).toBe(Buffer.from(await leaf.publicKey.getKeyIdentifier(crypto)).toString('hex'));
    expect(leaf.getExtension(AuthorityKeyIdentifierExtension)!.keyId).toBe(
      intermediate.getExtension(SubjectKeyIdentifierExtension)!.keyId,
    );

    // Issuer extensions: .1.1 raw bytes, .1.8 DER UTF8String.
    expect(Buffer.from(leaf.getExtension(FULCIO_OID.issuer)!.value).toString('utf8')).toBe(issuerA.url);
    expect(parseDerUtf8String(new Uint8Array(leaf.getExtension(FULCIO_OID.issuerV2)!.value))).toBe(issuerA.url);
    // No build claims in the token → no build extensions.
    expect(leaf.getExtension(FULCIO_OID.buildSignerUri)).toBeNull();

    // Signed by the intermediate, chains to the root.
    expect(leaf.issuer).toBe(intermediate.subject);
    expect(await leaf.verify({ publicKey: intermediate.publicKey, signatureOnly: true }, crypto)).toBe(true);
    const path = await new X509ChainBuilder({ certificates: [intermediate, root] }).build(leaf, crypto);
    expect(path.map((c) => c.subject)).toEqual([leaf.subject, intermediate.subject, root.subject]);
    expect(await root.verify({ signatureOnly: true }, crypto)).toBe(true);
    expect(path[2]!.equal(root)).toBe(true);
  });

  it('the submitted public key is what gets certified', async () => {
    const key = p256();
    const leaf = await issueLeaf(await issuerA.issueToken({ subject: SUBJECT }), SUBJECT, key);
    const spki = Buffer.from(key.publicPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    expect(Buffer.from(leaf.publicKey.rawData)).toEqual(spki);
  });

  it('copies build claims into the Fulcio build/source extensions', async () => {
    const claims = {
      build_signer_uri: 'https://git.corp/ci/pipeline.yaml@refs/heads/main',
      build_signer_digest: 'a'.repeat(40),
      runner_environment: 'airlock-hosted',
      source_repository_uri: 'https://git.corp/team/app',
      source_repository_digest: 'b'.repeat(40),
      source_repository_ref: 'refs/heads/main',
      build_config_uri: 'https://git.corp/team/app/.airlock/build.yaml@refs/heads/main',
      build_trigger: 'push',
      run_invocation_uri: 'https://ci.corp/runs/42/attempts/1',
    } as const;
    const leaf = await issueLeaf(await issuerA.issueToken({ subject: SUBJECT, claims }), SUBJECT);
    const expectOid = (oid: string, value: string): void => {
      const ext = leaf.getExtension(oid);
      expect(ext, oid).not.toBeNull();
      expect(ext!.critical).toBe(false);
      expect(parseDerUtf8String(new Uint8Array(ext!.value))).toBe(value);
    };
    expectOid(FULCIO_OID.buildSignerUri, claims.build_signer_uri);
    expectOid(FULCIO_OID.buildSignerDigest, claims.build_signer_digest);
    expectOid(FULCIO_OID.runnerEnvironment, claims.runner_environment);
    expectOid(FULCIO_OID.sourceRepositoryUri, claims.source_repository_uri);
    expectOid(FULCIO_OID.sourceRepositoryDigest, claims.source_repository_digest);
    expectOid(FULCIO_OID.sourceRepositoryRef, claims.source_repository_ref);
    expectOid(FULCIO_OID.buildConfigUri, claims.build_config_uri);
    expectOid(FULCIO_OID.buildTrigger, claims.build_trigger);
    expectOid(FULCIO_OID.runInvocationUri, claims.run_invocation_uri);
    expect(leaf.getExtension(FULCIO_OID.sourceRepositoryOwnerUri)).toBeNull();
  });

  it('accepts a second trusted issuer with another trust domain', async () => {
    const subject = 'spiffe://build.corp/pipelines/release';
    const leaf = await issueLeaf(await issuerB.issueToken({ subject }), subject);
    expect(leaf.getExtension(SubjectAlternativeNameExtension)!.names.items.map((n) => n.value)).toEqual([subject]);
    expect(parseDerUtf8String(new Uint8Array(leaf.getExtension(FULCIO_OID.issuerV2)!.value))).toBe(issuerB.url);
  });

  it('gives email identities an rfc822Name SAN (PoP over the email)', async () => {
    const token = await emailIssuer.sign({ sub: 'user-123', email: 'dev@corp.example', email_verified: true });
    const leaf = await issueLeaf(token, 'dev@corp.example');
    const san = leaf.getExtension(SubjectAlternativeNameExtension)!;
    expect(san.critical).toBe(true);
    expect(san.names.items.map((n) => [n.type, n.value])).toEqual([['email', 'dev@corp.example']]);
    // Proving possession over `sub` instead of the email is refused.
    const key = p256();
    const wrong = await postJson(ca.url, signingCertBody(token, key, 'user-123'));
    expect(wrong.status).toBe(400);
    expect(wrong.json.code).toBe('CA_POP_INVALID');
  });

  it('accepts Ed25519 and P-384 keys', async () => {
    for (const type of ['ed25519', 'p384'] as const) {
      const pair =
        type === 'ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const key = {
        privateKey: pair.privateKey,
        publicPem: pair.publicKey.export({ format: 'pem', type: 'spki' }) as string,
      };
      const leaf = await issueLeaf(await issuerA.issueToken({ subject: SUBJECT }), SUBJECT, key);
      expect(leaf.publicKey.algorithm.name).toBe(type === 'ed25519' ? 'Ed25519' : 'ECDSA');
    }
  });

  it('accepts a PKCS#10 CSR, whose signature is the proof of possession', async () => {
    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
    const csr = await Pkcs10CertificateRequestGenerator.create(
      { name: 'CN=ignored', keys, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } },
      crypto,
    );
    const token = await issuerA.issueToken({ subject: SUBJECT });
    const ok = await postJson(ca.url, {
      credentials: { oidcIdentityToken: token },
      certificateSigningRequest: csr.toString('pem'),
    });
    expect(ok.status, JSON.stringify(ok.json)).toBe(201);
    const leaf = new X509Certificate(chainOf(ok.json)[0]!);
    expect(leaf.subject).toBe(''); // the CSR's subject is ignored
    expect(Buffer.from(leaf.publicKey.rawData)).toEqual(Buffer.from(csr.publicKey.rawData));

    // Tamper with the CSR signature.
    const der = Buffer.from(csr.rawData);
    der[der.length - 3] = der[der.length - 3]! ^ 0x01;
    const bad = await postJson(ca.url, {
      credentials: { oidcIdentityToken: token },
      certificateSigningRequest: der.toString('base64'),
    });
    expect(bad.status).toBe(400);
    expect(bad.json.code).toBe('CA_POP_INVALID');
  });

  it('optionally: openssl reads the leaf as a critical-SAN code-signing certificate', async (ctx) => {
    let hasOpenssl = true;
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
    } catch {
      hasOpenssl = false;
    }
    if (!hasOpenssl) {
      if (process.env.AIRLOCK_REQUIRE_TOOLS === '1') throw new Error('openssl is required (AIRLOCK_REQUIRE_TOOLS=1)');
      console.log('skipping openssl check: openssl not installed');
      ctx.skip();
      return;
    }
    const leaf = await issueLeaf(await issuerA.issueToken({ subject: SUBJECT }), SUBJECT);
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: leaf.toString('pem') }).toString();
    expect(text).toMatch(/X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/airlock\.internal\/ci\/runner-1/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\s/);
    expect(text).toMatch(/X509v3 Extended Key Usage:\s+Code Signing/);
    expect(text).toContain('1.3.6.1.4.1.57264.1.8');
    const dir = makeTmpDir('airlock-ca-openssl-', dirs);
    fs.writeFileSync(path.join(dir, 'root.pem'), ca.rootPem);
    fs.writeFileSync(path.join(dir, 'int.pem'), ca.intermediatePem);
    fs.writeFileSync(path.join(dir, 'leaf.pem'), leaf.toString('pem'));
    const out = execFileSync('openssl', [
      'verify',
      '-purpose',
      'any',
      '-CAfile',
      path.join(dir, 'root.pem'),
      '-untrusted',
      path.join(dir, 'int.pem'),
      path.join(dir, 'leaf.pem'),
    ]).toString();
    expect(out).toContain('leaf.pem: OK');
  });
});

describe('signingCert refusals', () => {
  const expectRefusal = async (token: string, status: number, code: string, identity = SUBJECT): Promise<void> => {
    const { status: got, json } = await postJson(ca.url, signingCertBody(token, p256(), identity));
    expect({ status: got, code: json.code }).toEqual({ status, code });
    expect(typeof json.message).toBe('string');
  };
  const now = (): number => Math.floor(Date.now() / 1000);

  it('401 for a token from an untrusted (running) issuer', async () => {
    await expectRefusal(await rogue.issueToken({ subject: SUBJECT }), 401, 'OIDC_UNTRUSTED_ISSUER');
  });
  it('401 for an expired token', async () => {
    const token = await issuerA.issueToken({
      subject: SUBJECT,
      ttlSeconds: 60,
      issuedAt: new Date(Date.now() - 2 * 3600_000),
    });
    await expectRefusal(token, 401, 'OIDC_EXPIRED');
  });
  it('401 for the wrong audience', async () => {
    await expectRefusal(
      await issuerA.issueToken({ subject: SUBJECT, audience: 'not-sigstore' }),
      401,
      'OIDC_BAD_AUDIENCE',
    );
  });
  it('401 for a flipped signature byte', async () => {
    await expectRefusal(flipSignatureByte(await issuerA.issueToken({ subject: SUBJECT })), 401, 'OIDC_BAD_SIGNATURE');
  });
  it('401 for a token re-signed by another key under the issuer kid', async () => {
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const token = await new SignJWT({ iss: issuerA.url, sub: SUBJECT, aud: 'sigstore', iat: now(), exp: now() + 600 })
      .setProtectedHeader({ alg: 'ES256', kid: issuerA.issuer.keyId })
      .sign(attacker);
    await expectRefusal(token, 401, 'OIDC_BAD_SIGNATURE');
  });
  it('401 for alg none', async () => {
    await expectRefusal(
      unsignedToken({ iss: issuerA.url, sub: SUBJECT, aud: 'sigstore', iat: now(), exp: now() + 600 }),
      401,
      'OIDC_UNSUPPORTED_ALG',
    );
  });
  it('401 for garbage and for a SPIFFE ID outside the issuer trust domain', async () => {
    await expectRefusal('not.a.jwt', 401, 'OIDC_MALFORMED');
    // Issuer B is trusted for build.corp only; a second CA configured with the wrong domain refuses its tokens.
    const strict = await startCaServer({
      dataDir: makeTmpDir('airlock-ca-strict-', dirs),
      issuers: [{ issuerUrl: issuerB.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true }],
    });
    try {
      const subject = 'spiffe://build.corp/x';
      const { status, json } = await postJson(
        strict.url,
        signingCertBody(await issuerB.issueToken({ subject }), p256(), subject),
      );
      expect({ status, code: json.code }).toEqual({ status: 401, code: 'OIDC_BAD_SUBJECT' });
    } finally {
      await strict.close();
    }
  });
  it('401 for an email token whose email is not verified', async () => {
    const token = await emailIssuer.sign({ sub: 'u', email: 'dev@corp.example', email_verified: false });
    await expectRefusal(token, 401, 'OIDC_EMAIL_UNVERIFIED', 'dev@corp.example');
  });

  it('400 for a proof of possession by another key', async () => {
    const token = await issuerA.issueToken({ subject: SUBJECT });
    const certified = p256();
    const other = p256();
    const body = signingCertBody(token, certified, SUBJECT);
    (body.publicKeyRequest as Record<string, unknown>).proofOfPossession = proofOfPossession(other, SUBJECT);
    const { status, json } = await postJson(ca.url, body);
    expect({ status, code: json.code }).toEqual({ status: 400, code: 'CA_POP_INVALID' });
  });
  it('400 for a proof of possession over the wrong string', async () => {
    const token = await issuerA.issueToken({ subject: SUBJECT });
    const { status, json } = await postJson(
      ca.url,
      signingCertBody(token, p256(), 'spiffe://airlock.internal/someone-else'),
    );
    expect({ status, code: json.code }).toEqual({ status: 400, code: 'CA_POP_INVALID' });
  });
  it('400 for weak or unsupported keys', async () => {
    const token = await issuerA.issueToken({ subject: SUBJECT });
    const weakRsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' });
    for (const pair of [weakRsa, k1]) {
      const key = {
        privateKey: pair.privateKey,
        publicPem: pair.publicKey.export({ format: 'pem', type: 'spki' }) as string,
      };
      const { status, json } = await postJson(ca.url, signingCertBody(token, key, SUBJECT));
      expect({ status, code: json.code }).toEqual({ status: 400, code: 'CA_UNSUPPORTED_KEY' });
    }
    // A private key where the public key belongs is refused, not silently converted.
    const key = p256();
    const body = signingCertBody(token, key, SUBJECT);
    (body.publicKeyRequest as { publicKey: { content: string } }).publicKey.content = key.privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    }) as string;
    const { status, json } = await postJson(ca.url, body);
    expect({ status, code: json.code }).toEqual({ status: 400, code: 'CA_REQUEST_INVALID' });
  });
  it('400 for a token claim that cannot be an extension value', async () => {
    const token = await emailIssuer.sign({
      sub: 'u',
      email: 'dev@corp.example',
      email_verified: true,
      build_trigger: 42,
    });
    const { status, json } = await postJson(ca.url, signingCertBody(token, p256(), 'dev@corp.example'));
    expect({ status, code: json.code }).toEqual({ status: 400, code: 'CA_CLAIM_INVALID' });
  });
  it('400/413/405/404 for malformed HTTP requests', async () => {
    expect((await postJson(ca.url, '{not json')).status).toBe(400);
    expect((await postJson(ca.url, '[]')).status).toBe(400);
    expect((await postJson(ca.url, { publicKeyRequest: {} })).json.code).toBe('CA_REQUEST_INVALID');
    const token = await issuerA.issueToken({ subject: SUBJECT });
    expect((await postJson(ca.url, { credentials: { oidcIdentityToken: token } })).status).toBe(400);
    const big = await postJson(ca.url, JSON.stringify({ pad: 'x'.repeat(70_000) }));
    expect(big.status).toBe(413);
    expect((await fetch(`${ca.url}/api/v2/signingCert`)).status).toBe(405);
    expect((await fetch(`${ca.url}/api/v1/signingCert`, { method: 'POST', body: '{}' })).status).toBe(404);
  });
  it('accepts the token from an Authorization header when the body has none', async () => {
    const key = p256();
    const token = await issuerA.issueToken({ subject: SUBJECT });
    const body = signingCertBody(token, key, SUBJECT);
    delete body.credentials;
    const res = await fetch(`${ca.url}/api/v2/signingCert`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(201);
  });
});

describe('in-process CertificateAuthority', () => {
  it('issues without a server, with a configurable validity', async () => {
    const authority = await CertificateAuthority.open({
      dataDir: makeTmpDir('airlock-ca-inproc-', dirs),
      issuers: [{ issuerUrl: issuerA.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true }],
      certValiditySeconds: 300,
    });
    const key = p256();
    const issued = await authority.issue({
      token: await issuerA.issueToken({ subject: SUBJECT }),
      publicKey: key.publicPem,
      proofOfPossession: proofOfPossession(key, SUBJECT),
    });
    expect(issued.notAfter.getTime() - issued.notBefore.getTime()).toBe(300_000);
    expect(issued.principal).toEqual({ issuerUrl: issuerA.url, name: SUBJECT, san: { type: 'uri', value: SUBJECT } });
    expect(issued.chainPem.slice(1)).toEqual([authority.intermediatePem, authority.rootPem]);
    const leaf = new X509Certificate(issued.certificateDer);
    expect(leaf.notAfter.getTime() - leaf.notBefore.getTime()).toBe(300_000);
    expect(leaf.serialNumber).toBe(issued.serialNumber);
    await expect(
      authority.issue({
        token: await rogue.issueToken({ subject: SUBJECT }),
        publicKey: key.publicPem,
        proofOfPossession: proofOfPossession(key, SUBJECT),
      }),
    ).rejects.toMatchObject({ code: 'OIDC_UNTRUSTED_ISSUER' });
  });
});

describe('trustBundle and configuration', () => {
  it('serves the chain without the leaf', async () => {
    const body = (await (await fetch(`${ca.url}/api/v2/trustBundle`)).json()) as {
      chains: { certificates: string[] }[];
    };
    expect(body).toEqual({ chains: [{ certificates: [ca.intermediatePem, ca.rootPem] }] });
  });
  it('describes the issuers in Fulcio shape', async () => {
    const body = (await (await fetch(`${ca.url}/api/v2/configuration`)).json()) as { issuers: unknown[] };
    expect(body.issuers).toEqual([
      { issuerUrl: issuerA.url, audience: 'sigstore', challengeClaim: 'sub', spiffeTrustDomain: 'airlock.internal' },
      { issuerUrl: issuerB.url, audience: 'sigstore', challengeClaim: 'sub', spiffeTrustDomain: 'build.corp' },
      { issuerUrl: emailIssuer.url, audience: 'sigstore', challengeClaim: 'email' },
    ]);
  });
});
