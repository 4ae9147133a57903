/**
 * spiffeIdOfPeer / serviceMtls against client certificates that chain to the trust bundle but are not valid
 * X509-SVIDs (real TLS on loopback): two URI SANs, no URI SAN, a non-SPIFFE URI, a SPIFFE ID with a dot segment,
 * a CA certificate, an expired leaf. Each is refused with 401 MTLS_CLIENT_CERT_INVALID naming why; a valid SVID
 * of an allowed anchored pattern passes; an unanchored pattern is a configuration error.
 */
import { webcrypto, type KeyObject } from 'node:crypto';
import { createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSvidCa, issueX509Svid, type SvidCa } from '@airlock/ca';
import { compileSpiffeAllowList, serviceMtls, splitDerCertificates } from '@airlock/identity';
import {
  BasicConstraintsExtension,
  SubjectAlternativeNameExtension,
  X509Certificate,
  X509CertificateGenerator,
  type JsonGeneralName,
} from '@peculiar/x509';

const TD = 'example.org';
let ca: SvidCa;
let server: Server;
let url: string;

async function signingKey(key: KeyObject) {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
}

/** A client certificate from the trust bundle's CA with the SANs / CA flag / dates a test wants. */
async function clientCert(opts: { sans: JsonGeneralName[]; isCa?: boolean; expired?: boolean }) {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const caCert = new X509Certificate(ca.certificatePem);
  const now = Date.now();
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: '01' + Math.floor(Math.random() * 1e12).toString(16),
      subject: 'O=test',
      issuer: caCert.subject,
      notBefore: new Date(now - (opts.expired ? 7200_000 : 60_000)),
      notAfter: new Date(now + (opts.expired ? -3600_000 : 3600_000)),
      publicKey: keys.publicKey,
      signingKey: await signingKey(ca.privateKey),
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [
        new BasicConstraintsExtension(opts.isCa === true, undefined, true),
        ...(opts.sans.length ? [new SubjectAlternativeNameExtension(opts.sans, false)] : []),
      ],
    },
    webcrypto,
  );
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    cert: cert.toString('pem'),
    key: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64')}\n-----END PRIVATE KEY-----\n`,
  };
}

function call(client: { cert: string; key: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/`,
      { method: 'POST', ca: ca.certificatePem, checkServerIdentity: () => undefined, agent: false, ...client },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  ca = await createSvidCa({ trustDomain: TD });
  const s = await issueX509Svid({ spiffeId: `spiffe://${TD}/svc`, ca, ttlSeconds: 600 });
  const serverCert = splitDerCertificates(s.x509_svid).map((d) => new X509Certificate(d).toString('pem'));
  const serverKey = `-----BEGIN PRIVATE KEY-----\n${s.x509_svid_key!.toString('base64')}\n-----END PRIVATE KEY-----\n`;
  const mtls = serviceMtls({
    cert: serverCert.join('\n'),
    key: serverKey,
    trustBundle: ca.certificatePem,
    allow: [`^spiffe://example\\.org/workspace/[a-z]+$`],
  });
  server = createServer(mtls.tls, (req, res) => {
    if (!mtls.gate(req, res)) res.writeHead(200).end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('spiffeIdOfPeer refuses certificates from the bundle that are not X509-SVIDs (401)', () => {
  const cases: [string, () => Promise<{ cert: string; key: string }>, RegExp][] = [
    [
      'two URI SANs',
      () =>
        clientCert({
          sans: [
            { type: 'url', value: `spiffe://${TD}/workspace/a` },
            { type: 'url', value: `spiffe://${TD}/workspace/b` },
          ],
        }),
      /exactly one URI SAN, this one has 2/,
    ],
    ['no URI SAN', () => clientCert({ sans: [{ type: 'dns', value: 'a.example.org' }] }), /this one has 0/],
    ['a non-SPIFFE URI', () => clientCert({ sans: [{ type: 'url', value: 'https://x/y' }] }), /scheme must be/],
    [
      'a dot path segment',
      () => clientCert({ sans: [{ type: 'url', value: `spiffe://${TD}/workspace/../a` }] }),
      /"\." and "\.\."/,
    ],
    [
      'a CA certificate',
      () => clientCert({ sans: [{ type: 'url', value: `spiffe://${TD}/workspace/a` }], isCa: true }),
      /CA certificate/,
    ],
  ];
  for (const [name, make, why] of cases) {
    it(name, async () => {
      const r = await call(await make());
      expect(r.status, r.body).toBe(401);
      const error = (JSON.parse(r.body) as { error: { code: string; message: string } }).error;
      expect(error.code).toBe('MTLS_CLIENT_CERT_INVALID');
      expect(error.message).toMatch(why);
    });
  }

  it('an expired leaf (401, the chain check names it)', async () => {
    const c = await clientCert({ sans: [{ type: 'url', value: `spiffe://${TD}/workspace/a` }], expired: true });
    const r = await call(c);
    expect(r.status).toBe(401);
    expect(r.body).toMatch(/does not chain to the trust bundle \(or is expired\)/);
  });

  it('an SVID matching the anchored pattern passes; one outside it is 403 naming it', async () => {
    const ok = await clientCert({ sans: [{ type: 'url', value: `spiffe://${TD}/workspace/a` }] });
    expect(await call(ok)).toEqual({ status: 200, body: 'ok' });
    const deeper = await clientCert({ sans: [{ type: 'url', value: `spiffe://${TD}/workspace/a/b` }] });
    const r = await call(deeper);
    expect(r.status).toBe(403);
    expect(r.body).toContain(`spiffe://${TD}/workspace/a/b`);
  });
});

describe('compileSpiffeAllowList', () => {
  it('matches exact IDs and anchored patterns only, and refuses unanchored patterns and invalid IDs', () => {
    const allow = compileSpiffeAllowList([`spiffe://${TD}/airlock/runner`, '^spiffe://example\\.org/ws/[0-9]+$']);
    expect(allow(`spiffe://${TD}/airlock/runner`)).toBe(true);
    expect(allow(`spiffe://${TD}/airlock/runner2`)).toBe(false);
    expect(allow(`spiffe://${TD}/ws/42`)).toBe(true);
    expect(allow(`spiffe://${TD}/ws/42/x`)).toBe(false);
    expect(() => compileSpiffeAllowList(['^spiffe://example.org/.*'])).toThrow(/must end with \$/);
    expect(() => compileSpiffeAllowList(['spiffe://Example.org/x'])).toThrow(/trust domain/);
  });
});
