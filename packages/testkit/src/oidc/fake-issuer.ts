import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, SignJWT, type JWTPayload } from 'jose';

/**
 * A minimal third-party OIDC provider for tests (e.g. an "email" issuer): serves discovery + JWKS and signs
 * whatever payload the test asks for.
 */
export interface FakeOidcIssuer {
  url: string;
  kid: string;
  sign(payload: JWTPayload, options?: { ttlSeconds?: number; kid?: string; key?: KeyObject }): Promise<string>;
  close(): Promise<void>;
}

export async function startFakeOidcIssuer(): Promise<FakeOidcIssuer> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = publicKey.export({ format: 'jwk' });
  const kid = await calculateJwkThumbprint({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y }, 'sha256');
  let url = '';
  const server = http.createServer((req, res) => {
    const body =
      req.url === '/.well-known/openid-configuration'
        ? { issuer: url, jwks_uri: `${url}/keys`, id_token_signing_alg_values_supported: ['ES256'] }
        : req.url === '/keys'
          ? { keys: [{ ...jwk, kid, alg: 'ES256', use: 'sig' }] }
          : undefined;
    res.writeHead(body ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    kid,
    async sign(payload, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({
        iss: url,
        aud: 'sigstore',
        iat: now,
        nbf: now,
        exp: now + (options.ttlSeconds ?? 600),
        ...payload,
      })
        .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? kid, typ: 'JWT' })
        .sign(options.key ?? privateKey);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Base64url helpers for tampering with compact JWTs. */
export function b64url(buf: Buffer): string {
  return buf.toString('base64url');
}

export function flipSignatureByte(token: string): string {
  const [h, p, s] = token.split('.') as [string, string, string];
  const sig = Buffer.from(s, 'base64url');
  sig[sig.length - 5] = (sig[sig.length - 5] ?? 0) ^ 0x01;
  return `${h}.${p}.${b64url(sig)}`;
}

export function unsignedToken(payload: JWTPayload, alg = 'none'): string {
  const header = b64url(Buffer.from(JSON.stringify({ alg, typ: 'JWT' })));
  return `${header}.${b64url(Buffer.from(JSON.stringify(payload)))}.`;
}
