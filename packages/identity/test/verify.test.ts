import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { principalFromClaims } from '../src/principal.js';
import { startIdentityIssuer, type IdentityIssuerServer } from '../src/server.js';
import { validateTrustedIssuers, type TrustedIssuer } from '../src/trusted-issuer.js';
import { OidcTokenVerifier, verifyOidcToken } from '../src/verify.js';
import { flipSignatureByte, startFakeOidcIssuer, unsignedToken, type FakeOidcIssuer } from '@airlock/testkit';

const SUBJECT = 'spiffe://airlock.internal/ci/runner';

describe('verifyOidcToken', () => {
  let dirs: string[];
  let trusted: IdentityIssuerServer;
  let untrusted: IdentityIssuerServer;
  let second: IdentityIssuerServer;
  let email: FakeOidcIssuer;
  let issuers: TrustedIssuer[];

  beforeAll(async () => {
    dirs = [0, 1, 2].map(() => fs.mkdtempSync(path.join(os.tmpdir(), 'airlock-oidc-')));
    trusted = await startIdentityIssuer({ dataDir: dirs[0]! });
    untrusted = await startIdentityIssuer({ dataDir: dirs[1]! });
    second = await startIdentityIssuer({ dataDir: dirs[2]!, trustDomain: 'build.corp' });
    email = await startFakeOidcIssuer();
    issuers = [
      { issuerUrl: trusted.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true },
      { issuerUrl: second.url, type: 'spiffe', trustDomain: 'build.corp', allowInsecureHttp: true },
      { issuerUrl: email.url, type: 'email', allowInsecureHttp: true },
    ];
  });
  afterAll(async () => {
    await Promise.all([trusted.close(), untrusted.close(), second.close(), email.close()]);
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('accepts a valid token', async () => {
    const v = await verifyOidcToken(await trusted.issueToken({ subject: SUBJECT }), { issuers });
    expect(v.issuer.issuerUrl).toBe(trusted.url);
    expect(v.subject).toBe(SUBJECT);
    expect(v.claims.aud).toBe('sigstore');
  });

  it('accepts a second trusted issuer with its own trust domain', async () => {
    const v = await verifyOidcToken(await second.issueToken({ subject: 'spiffe://build.corp/pipeline/7' }), {
      issuers,
    });
    expect(v.issuer.issuerUrl).toBe(second.url);
    expect(v.principal.san).toEqual({ type: 'uri', value: 'spiffe://build.corp/pipeline/7' });
  });

  it('refuses a token from an issuer that is running but not configured', async () => {
    const token = await untrusted.issueToken({ subject: SUBJECT });
    await expect(verifyOidcToken(token, { issuers })).rejects.toMatchObject({ code: 'OIDC_UNTRUSTED_ISSUER' });
  });

  it('matches iss exactly (a trailing slash is another issuer)', async () => {
    const token = await trusted.issueToken({ subject: SUBJECT });
    const slashed: TrustedIssuer[] = [
      { issuerUrl: `${trusted.url}/`, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true },
    ];
    await expect(verifyOidcToken(token, { issuers: slashed })).rejects.toMatchObject({ code: 'OIDC_UNTRUSTED_ISSUER' });
  });

  it('refuses an expired token', async () => {
    const token = await trusted.issueToken({
      subject: SUBJECT,
      ttlSeconds: 60,
      issuedAt: new Date(Date.now() - 3600_000),
    });
    await expect(verifyOidcToken(token, { issuers })).rejects.toMatchObject({ code: 'OIDC_EXPIRED' });
  });

  it('refuses a token that is not valid yet', async () => {
    const token = await trusted.issueToken({ subject: SUBJECT });
    await expect(verifyOidcToken(token, { issuers, now: new Date(Date.now() - 3600_000) })).rejects.toMatchObject({
      code: 'OIDC_NOT_YET_VALID',
    });
  });

  it('refuses the wrong audience (verifier-wide and per-issuer)', async () => {
    const token = await trusted.issueToken({ subject: SUBJECT, audience: 'something-else' });
    await expect(verifyOidcToken(token, { issuers })).rejects.toMatchObject({ code: 'OIDC_BAD_AUDIENCE' });
    const ok = await trusted.issueToken({ subject: SUBJECT });
    await expect(verifyOidcToken(ok, { issuers, audience: 'tlog' })).rejects.toMatchObject({
      code: 'OIDC_BAD_AUDIENCE',
    });
    const perIssuer = [{ ...issuers[0]!, audience: 'something-else' }];
    await expect(verifyOidcToken(token, { issuers: perIssuer })).resolves.toMatchObject({ subject: SUBJECT });
  });

  it('refuses a tampered signature', async () => {
    const token = flipSignatureByte(await trusted.issueToken({ subject: SUBJECT }));
    await expect(verifyOidcToken(token, { issuers })).rejects.toMatchObject({ code: 'OIDC_BAD_SIGNATURE' });
  });

  it('refuses a tampered payload', async () => {
    const [h, , s] = (await trusted.issueToken({ subject: SUBJECT })).split('.');
    const forged = Buffer.from(
      JSON.stringify({ iss: trusted.url, sub: 'spiffe://airlock.internal/admin', aud: 'sigstore', iat: 1, exp: 9e9 }),
    ).toString('base64url');
    await expect(verifyOidcToken(`${h}.${forged}.${s}`, { issuers })).rejects.toMatchObject({
      code: 'OIDC_BAD_SIGNATURE',
    });
  });

  it('refuses a token re-signed by another key under the same kid', async () => {
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({
      iss: trusted.url,
      sub: SUBJECT,
      aud: 'sigstore',
      iat: now,
      nbf: now,
      exp: now + 600,
    })
      .setProtectedHeader({ alg: 'ES256', kid: trusted.issuer.keyId })
      .sign(attacker);
    await expect(verifyOidcToken(token, { issuers })).rejects.toMatchObject({ code: 'OIDC_BAD_SIGNATURE' });
  });

  it('refuses a token whose kid is unknown to the issuer', async () => {
    const attacker = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ iss: trusted.url, sub: SUBJECT, aud: 'sigstore', iat: now, exp: now + 600 })
      .setProtectedHeader({ alg: 'ES256', kid: 'not-a-key' })
      .sign(attacker);
    await expect(verifyOidcToken(token, { issuers })).rejects.toMatchObject({ code: 'OIDC_BAD_SIGNATURE' });
  });

  it('refuses alg none and symmetric algorithms', async () => {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: trusted.url, sub: SUBJECT, aud: 'sigstore', iat: now, exp: now + 600 };
    await expect(verifyOidcToken(unsignedToken(payload), { issuers })).rejects.toMatchObject({
      code: 'OIDC_UNSUPPORTED_ALG',
    });
    const hs = await new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).sign(new Uint8Array(32));
    await expect(verifyOidcToken(hs, { issuers })).rejects.toMatchObject({ code: 'OIDC_UNSUPPORTED_ALG' });
  });

  it('refuses malformed tokens', async () => {
    for (const bad of ['', 'abc', 'a.b', 'a.b.c.d', '!!.??.**', 'x'.repeat(40_000), 42]) {
      await expect(verifyOidcToken(bad, { issuers })).rejects.toMatchObject({ code: 'OIDC_MALFORMED' });
    }
  });

  it('refuses a SPIFFE subject outside the configured trust domain', async () => {
    const token = await second.issueToken({ subject: 'spiffe://build.corp/x' });
    const mismatched: TrustedIssuer[] = [
      { issuerUrl: second.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true },
    ];
    await expect(verifyOidcToken(token, { issuers: mismatched })).rejects.toMatchObject({ code: 'OIDC_BAD_SUBJECT' });
  });

  it('maps an email issuer to an rfc822Name principal and requires email_verified', async () => {
    const ok = await email.sign({ sub: '1234', email: 'dev@corp.example', email_verified: true });
    const v = await verifyOidcToken(ok, { issuers });
    expect(v.principal).toEqual({
      issuerUrl: email.url,
      name: 'dev@corp.example',
      san: { type: 'email', value: 'dev@corp.example' },
    });

    const unverified = await email.sign({ sub: '1234', email: 'dev@corp.example', email_verified: false });
    await expect(verifyOidcToken(unverified, { issuers })).rejects.toMatchObject({ code: 'OIDC_EMAIL_UNVERIFIED' });
    const stringly = await email.sign({ sub: '1234', email: 'dev@corp.example', email_verified: 'true' });
    await expect(verifyOidcToken(stringly, { issuers })).rejects.toMatchObject({ code: 'OIDC_EMAIL_UNVERIFIED' });
    const missing = await email.sign({ sub: '1234' });
    await expect(verifyOidcToken(missing, { issuers })).rejects.toMatchObject({ code: 'OIDC_BAD_SUBJECT' });
  });

  it('reports an unreachable JWKS distinctly from a bad token', async () => {
    const closed = await startFakeOidcIssuer();
    const token = await closed.sign({ sub: 'x', email: 'a@b.example', email_verified: true });
    await closed.close();
    await expect(
      verifyOidcToken(token, { issuers: [{ issuerUrl: closed.url, type: 'email', allowInsecureHttp: true }] }),
    ).rejects.toMatchObject({
      code: 'OIDC_JWKS_UNAVAILABLE',
    });
  });

  it('uses a pinned jwksUrl without discovery', async () => {
    const verifier = new OidcTokenVerifier({
      issuers: [
        {
          issuerUrl: trusted.url,
          type: 'spiffe',
          trustDomain: 'airlock.internal',
          jwksUrl: trusted.jwksUrl,
          allowInsecureHttp: true,
        },
      ],
    });
    await expect(verifier.verify(await trusted.issueToken({ subject: SUBJECT }))).resolves.toMatchObject({
      subject: SUBJECT,
    });
  });
});

describe('principalFromClaims', () => {
  it('derives the Kubernetes service-account URI and signs over sub', () => {
    const issuer: TrustedIssuer = { issuerUrl: 'https://k8s.example', type: 'kubernetes' };
    const p = principalFromClaims(issuer, {
      sub: 'system:serviceaccount:build:builder',
      'kubernetes.io': { namespace: 'build', serviceaccount: { name: 'builder', uid: 'u' } },
    });
    expect(p.name).toBe('system:serviceaccount:build:builder');
    expect(p.san).toEqual({ type: 'uri', value: 'https://kubernetes.io/namespaces/build/serviceaccounts/builder' });
    expect(() =>
      principalFromClaims(issuer, { sub: 's', 'kubernetes.io': { namespace: '../x', serviceaccount: { name: 'a' } } }),
    ).toThrow(expect.objectContaining({ code: 'OIDC_BAD_SUBJECT' }));
    expect(() => principalFromClaims(issuer, { sub: 's' })).toThrow(
      expect.objectContaining({ code: 'OIDC_BAD_SUBJECT' }),
    );
  });

  it('requires uri subjects to match the subject domain scheme and host', () => {
    const issuer: TrustedIssuer = { issuerUrl: 'https://ci.example', type: 'uri', subjectDomain: 'https://ci.example' };
    expect(principalFromClaims(issuer, { sub: 'https://ci.example/jobs/1' }).san).toEqual({
      type: 'uri',
      value: 'https://ci.example/jobs/1',
    });
    for (const sub of [
      'http://ci.example/jobs/1',
      'https://evil.example/jobs/1',
      'someone@ci.example',
      'https://ci.example/a b',
    ]) {
      expect(() => principalFromClaims(issuer, { sub })).toThrow(expect.objectContaining({ code: 'OIDC_BAD_SUBJECT' }));
    }
  });
});

describe('validateTrustedIssuers', () => {
  it.each([
    ['empty list', []],
    ['unknown type', [{ issuerUrl: 'https://a', type: 'github' }]],
    ['spiffe without trust domain', [{ issuerUrl: 'https://a', type: 'spiffe' }]],
    ['uri without subject domain', [{ issuerUrl: 'https://a', type: 'uri' }]],
    ['non-http issuer', [{ issuerUrl: 'file:///etc', type: 'email' }]],
    [
      'duplicate issuer',
      [
        { issuerUrl: 'https://a', type: 'email' },
        { issuerUrl: 'https://a', type: 'email' },
      ],
    ],
  ])('rejects %s', (_why, config) => {
    expect(() => validateTrustedIssuers(config)).toThrow(expect.objectContaining({ code: 'OIDC_CONFIG_INVALID' }));
  });
});
