import { generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IdentityIssuer, readIssuerMetadata } from '../src/issuer.js';
import { startIdentityIssuer, type IdentityIssuerServer } from '../src/server.js';
import { verifyOidcToken } from '../src/verify.js';

const tmpDirs: string[] = [];
function tmpDir(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'airlock-identity-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

describe('identity issuer server', () => {
  let dataDir: string;
  let server: IdentityIssuerServer;
  beforeAll(async () => {
    dataDir = tmpDir();
    server = await startIdentityIssuer({ dataDir });
  });
  afterAll(async () => {
    await server.close();
  });

  it('serves OIDC discovery and the JWKS', async () => {
    const discovery = (await (await fetch(`${server.url}/.well-known/openid-configuration`)).json()) as Record<
      string,
      unknown
    >;
    expect(discovery.issuer).toBe(server.url);
    expect(discovery.jwks_uri).toBe(server.jwksUrl);
    expect(discovery.id_token_signing_alg_values_supported).toEqual(['ES256']);
    expect(discovery.subject_types_supported).toEqual(['public']);
    expect(discovery.response_types_supported).toEqual(['id_token']);
    expect(discovery.claims_supported).toEqual(
      expect.arrayContaining(['iss', 'sub', 'aud', 'exp', 'build_signer_uri']),
    );

    const jwks = (await (await fetch(server.jwksUrl)).json()) as { keys: Record<string, string>[] };
    expect(jwks.keys).toHaveLength(1);
    const key = jwks.keys[0]!;
    expect(key).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(key.d).toBeUndefined();
    expect(key.kid).toBe(await calculateJwkThumbprint({ kty: key.kty, crv: key.crv, x: key.x, y: key.y }, 'sha256'));
    expect(key.kid).toBe(server.issuer.keyId);

    expect((await fetch(`${server.url}/nope`)).status).toBe(404);
    expect((await fetch(`${server.url}/.well-known/jwks.json`, { method: 'POST' })).status).toBe(405);
  });

  it('issues workload tokens that verify, without an email claim', async () => {
    const subject = 'spiffe://airlock.internal/ci/runner-1';
    const token = await server.issueToken({ subject, claims: { build_trigger: 'push' } });
    const header = decodeProtectedHeader(token);
    expect(header).toMatchObject({ alg: 'ES256', kid: server.issuer.keyId, typ: 'JWT' });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ iss: server.url, sub: subject, aud: 'sigstore', build_trigger: 'push' });
    expect(claims.exp! - claims.iat!).toBe(600);
    expect(claims.nbf).toBe(claims.iat);
    expect(typeof claims.jti).toBe('string');
    expect(claims).not.toHaveProperty('email');

    const verified = await verifyOidcToken(token, {
      issuers: [{ issuerUrl: server.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true }],
    });
    expect(verified.subject).toBe(subject);
    expect(verified.principal).toEqual({ issuerUrl: server.url, name: subject, san: { type: 'uri', value: subject } });
  });

  it('refuses subjects that are not SPIFFE IDs in its trust domain', async () => {
    await expect(server.issueToken({ subject: 'alice@example.com' })).rejects.toMatchObject({
      code: 'SPIFFE_ID_INVALID',
    });
    await expect(server.issueToken({ subject: 'spiffe://airlock.internal/a/../b' })).rejects.toMatchObject({
      code: 'SPIFFE_ID_INVALID',
    });
    await expect(server.issueToken({ subject: 'spiffe://other.internal/ci' })).rejects.toMatchObject({
      code: 'SPIFFE_TRUST_DOMAIN_MISMATCH',
    });
  });

  it('bounds the TTL and refuses unknown or reserved claims', async () => {
    const subject = 'spiffe://airlock.internal/ci';
    await expect(server.issueToken({ subject, ttlSeconds: 3601 })).rejects.toMatchObject({
      code: 'TOKEN_REQUEST_INVALID',
    });
    await expect(server.issueToken({ subject, ttlSeconds: 0 })).rejects.toMatchObject({
      code: 'TOKEN_REQUEST_INVALID',
    });
    await expect(server.issueToken({ subject, ttlSeconds: 1.5 })).rejects.toMatchObject({
      code: 'TOKEN_REQUEST_INVALID',
    });
    for (const name of ['email', 'sub', 'iss', 'email_verified', 'random']) {
      await expect(server.issueToken({ subject, claims: { [name]: 'x' } as never })).rejects.toMatchObject({
        code: 'TOKEN_REQUEST_INVALID',
      });
    }
    await expect(server.issueToken({ subject, claims: { build_trigger: 'a\nb' } })).rejects.toMatchObject({
      code: 'TOKEN_REQUEST_INVALID',
    });
    await expect(server.issueToken({ subject, audience: '' })).rejects.toMatchObject({ code: 'TOKEN_REQUEST_INVALID' });
  });

  it('does not expose a token endpoint unless enabled', async () => {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      body: '{"subject":"spiffe://airlock.internal/x"}',
    });
    expect(res.status).toBe(404);
  });

  it('persists its key (0600) and records issuer metadata for in-process use', async () => {
    const keyFile = path.join(dataDir, 'identity', 'signing-key.pem');
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(readIssuerMetadata(dataDir)).toEqual({
      issuerUrl: server.url,
      trustDomain: 'airlock.internal',
      jwksUrl: server.jwksUrl,
    });

    // The CLI path: open from the data dir alone, same key, token verifies against the running server.
    const inProcess = await IdentityIssuer.open({ dataDir });
    expect(inProcess.keyId).toBe(server.issuer.keyId);
    expect(inProcess.issuerUrl).toBe(server.url);
    const token = await inProcess.issueToken({ subject: 'spiffe://airlock.internal/cli' });
    const verified = await verifyOidcToken(token, {
      issuers: [{ issuerUrl: server.url, type: 'spiffe', trustDomain: 'airlock.internal', allowInsecureHttp: true }],
    });
    expect(verified.subject).toBe('spiffe://airlock.internal/cli');
  });
});

describe('identity issuer keys and options', () => {
  const servers: IdentityIssuerServer[] = [];
  afterEach(async () => {
    while (servers.length) await servers.pop()!.close();
  });

  it('reuses the signing key across restarts', async () => {
    const dataDir = tmpDir();
    const a = await startIdentityIssuer({ dataDir });
    const kid = a.issuer.keyId;
    await a.close();
    const b = await startIdentityIssuer({ dataDir });
    servers.push(b);
    expect(b.issuer.keyId).toBe(kid);
  });

  it('refuses a signing key readable by others, or of the wrong type', async () => {
    const dataDir = tmpDir();
    const keyFile = path.join(dataDir, 'identity', 'signing-key.pem');
    await IdentityIssuer.open({ dataDir, issuerUrl: 'https://id.example' });
    fs.chmodSync(keyFile, 0o644);
    await expect(IdentityIssuer.open({ dataDir, issuerUrl: 'https://id.example' })).rejects.toMatchObject({
      code: 'IDENTITY_KEY_PERMISSIONS',
    });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    fs.writeFileSync(keyFile, rsa, { mode: 0o600 });
    fs.chmodSync(keyFile, 0o600);
    await expect(IdentityIssuer.open({ dataDir, issuerUrl: 'https://id.example' })).rejects.toMatchObject({
      code: 'IDENTITY_KEY_INVALID',
    });
  });

  it('needs an issuer URL when none is recorded, and validates it', async () => {
    await expect(IdentityIssuer.open({ dataDir: tmpDir() })).rejects.toMatchObject({ code: 'IDENTITY_CONFIG_INVALID' });
    await expect(IdentityIssuer.open({ dataDir: tmpDir(), issuerUrl: 'ftp://x' })).rejects.toMatchObject({
      code: 'IDENTITY_CONFIG_INVALID',
    });
    await expect(IdentityIssuer.open({ dataDir: tmpDir(), issuerUrl: 'https://x/?q=1' })).rejects.toMatchObject({
      code: 'IDENTITY_CONFIG_INVALID',
    });
    await expect(
      IdentityIssuer.open({ dataDir: tmpDir(), issuerUrl: 'https://x', trustDomain: 'Bad Domain' }),
    ).rejects.toMatchObject({
      code: 'SPIFFE_ID_INVALID',
    });
  });

  it('honours a custom trust domain', async () => {
    const s = await startIdentityIssuer({ dataDir: tmpDir(), trustDomain: 'corp.example' });
    servers.push(s);
    const token = await s.issueToken({ subject: 'spiffe://corp.example/build' });
    expect(decodeJwt(token).sub).toBe('spiffe://corp.example/build');
    await expect(s.issueToken({ subject: 'spiffe://airlock.internal/build' })).rejects.toMatchObject({
      code: 'SPIFFE_TRUST_DOMAIN_MISMATCH',
    });
  });

  it('serves the loopback token endpoint when enabled', async () => {
    const s = await startIdentityIssuer({ dataDir: tmpDir(), enableTokenEndpoint: true });
    servers.push(s);
    const ok = await fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'spiffe://airlock.internal/ci/job', ttlSeconds: 60 }),
    });
    expect(ok.status).toBe(200);
    const { token } = (await ok.json()) as { token: string };
    const claims = decodeJwt(token);
    expect(claims.sub).toBe('spiffe://airlock.internal/ci/job');
    expect(claims.exp! - claims.iat!).toBe(60);

    const bad = await fetch(`${s.url}/token`, { method: 'POST', body: JSON.stringify({ subject: 'spiffe://evil/x' }) });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { code: string }).code).toBe('SPIFFE_TRUST_DOMAIN_MISMATCH');
    const junk = await fetch(`${s.url}/token`, { method: 'POST', body: '{not json' });
    expect(junk.status).toBe(400);
    const huge = await fetch(`${s.url}/token`, { method: 'POST', body: 'x'.repeat(20_000) });
    expect(huge.status).toBe(413);
  });
});
