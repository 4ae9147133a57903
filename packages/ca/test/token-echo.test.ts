/**
 * Issue 7: tokens are never echoed into error messages, and external issuers must be https. Forged and malformed
 * tokens carry a marker in every part an error path could quote (header alg, iss, sub, signature); neither the
 * verifier's thrown error nor the CA's HTTP error body may contain the marker or any segment of the token.
 */
import 'reflect-metadata';
import fs from 'node:fs';
import { IdentityIssuer, validateTrustedIssuers, verifyOidcToken, type TrustedIssuer } from '@airlock/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCaServer, type CaServer } from '../src/server.js';
import { makeTmpDir, p256, postJson, signingCertBody } from './support/ca-fixture.js';

const MARK = 'Zq7SECRETzq7';
const b64 = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');
const dirs: string[] = [];
let ca: CaServer;
let issuers: TrustedIssuer[];
let realToken: string;

beforeAll(async () => {
  const dataDir = makeTmpDir('airlock-echo-', dirs);
  const issuer = await IdentityIssuer.open({
    dataDir,
    issuerUrl: 'http://127.0.0.1:9/id',
    trustDomain: 'airlock.internal',
  });
  realToken = await issuer.issueToken({ subject: 'spiffe://airlock.internal/ci/echo' });
  issuers = [{ issuerUrl: issuer.issuerUrl, type: 'spiffe', trustDomain: 'airlock.internal', jwks: issuer.jwks() }];
  ca = await startCaServer({ dataDir, issuers });
});
afterAll(async () => {
  await ca?.close();
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const CASES = [
  'alg in the header',
  'untrusted iss',
  'iss not a string',
  'forged sub',
  'header not JSON',
  'payload not JSON',
  'not a JWS',
] as const;

/** Built from the issuer's real token (available once beforeAll ran). */
function forgedToken(name: (typeof CASES)[number]): string {
  const [h, p] = realToken.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
  const tokens: Record<(typeof CASES)[number], string> = {
    'alg in the header': `${b64({ alg: MARK, typ: 'JWT' })}.${p}.${b64(MARK)}`,
    'untrusted iss': `${h}.${b64({ ...claims, iss: `https://${MARK}.example` })}.${b64(MARK)}`,
    'iss not a string': `${h}.${b64({ ...claims, iss: [MARK] })}.${b64(MARK)}`,
    'forged sub': `${h}.${b64({ ...claims, sub: `spiffe://airlock.internal/${MARK}` })}.${b64(MARK)}`,
    'header not JSON': `${b64(`{"alg":"ES256",${MARK}`)}.${p}.${b64(MARK)}`,
    'payload not JSON': `${h}.${b64(`${MARK}{`)}.${b64(MARK)}`,
    'not a JWS': `${MARK}.${MARK}`,
  };
  return tokens[name];
}

function leaks(text: string, token: string): string[] {
  const parts = token.split('.').filter((s) => s.length >= 8);
  return [MARK, token, ...parts].filter((needle) => text.includes(needle));
}

describe('tokens never reach error messages', () => {
  it.each(CASES)('verifier: %s', async (name) => {
    const token = forgedToken(name);
    const err = (await verifyOidcToken(token, { issuers }).then(
      () => undefined,
      (e: unknown) => e,
    )) as Error & { code: string };
    expect(err?.code).toMatch(/^OIDC_/);
    expect(leaks(`${err.message} ${JSON.stringify(err)}`, token)).toEqual([]);
  });

  it.each(CASES)('CA HTTP error body: %s', async (name) => {
    const token = forgedToken(name);
    const { status, json } = await postJson(ca.url, signingCertBody(token, p256(), 'spiffe://airlock.internal/x'));
    expect(status).toBeGreaterThanOrEqual(400);
    expect(leaks(JSON.stringify(json), token)).toEqual([]);
  });
});

describe('external issuers must be https', () => {
  it('refuses an http issuer or jwksUrl unless allowInsecureHttp, and allows in-process keys', () => {
    const refuse = (i: unknown): void =>
      expect(() => validateTrustedIssuers([i])).toThrow(expect.objectContaining({ code: 'OIDC_CONFIG_INVALID' }));
    refuse({ issuerUrl: 'http://idp.example', type: 'email' });
    refuse({ issuerUrl: 'https://idp.example', type: 'email', jwksUrl: 'http://idp.example/keys' });
    expect(
      validateTrustedIssuers([{ issuerUrl: 'http://idp.example', type: 'email', allowInsecureHttp: true }]),
    ).toHaveLength(1);
    expect(validateTrustedIssuers([issuers[0]])).toHaveLength(1);
    expect(validateTrustedIssuers([{ issuerUrl: 'https://idp.example', type: 'email' }])).toHaveLength(1);
  });
});
