/**
 * Issue 10 §3 through the CLI: `airlock up --tls-cert --tls-key --client-ca --ca-allow-spiffe-id
 * --tlog-allow-spiffe-id --identity-allow-spiffe-id` on a real plane, real TLS over loopback. Writes to each
 * service need an X509-SVID from the plane's SPIFFE trust bundle whose ID the operator allowed for that service:
 * an authorized SVID gets a real certificate from the CA (201); no certificate, a certificate from another trust
 * bundle, and a valid SVID with an unauthorized ID are refused (401/401/403), the refusal naming the SPIFFE ID.
 * The same for `airlock admission serve --client-ca --allow-spiffe-id` (POST /validate, /workspace; probes stay open).
 */
import { generateKeyPairSync, sign, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSvidCa, issueX509Svid, loadOrCreateSvidCa, type SvidCa } from '@airlock/ca';
import { IdentityIssuer, x509SvidToPem } from '@airlock/identity';
import { runCli, startCli } from './helpers/cli.js';

const TD = 'airlock.internal';
const RUNNER = `spiffe://${TD}/airlock/runner`;
const SYNC = `spiffe://${TD}/airlock/mirror-sync`;
const INTRUDER = `spiffe://${TD}/airlock/intruder`;
const PLANE_ID = `spiffe://${TD}/airlock/plane`;

interface ClientPem {
  cert: string;
  key: string;
}

let root: string;
let plane: string;
let bundlePem: string;
let endpoints: { caUrl: string; tlogUrl: string; identityIssuerUrl: string };
let stop: (() => Promise<void>) | undefined;
let runner: ClientPem;
let sync: ClientPem;
let intruder: ClientPem;
let foreign: ClientPem;

const pemOf = async (ca: SvidCa, spiffeId: string): Promise<ClientPem> => {
  const p = x509SvidToPem(await issueX509Svid({ ca, spiffeId, ttlSeconds: 600 }));
  return { cert: p.certChainPem, key: p.keyPem };
};

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-up-mtls-'));
  plane = join(root, 'plane');
  // The plane's SPIFFE CA (the one `airlock identity agent` issues SVIDs from) is the client trust bundle.
  const ca = await loadOrCreateSvidCa(plane, TD);
  bundlePem = ca.certificatePem;
  const server = await pemOf(ca, PLANE_ID);
  writeFileSync(join(root, 'server.pem'), server.cert);
  writeFileSync(join(root, 'server-key.pem'), server.key, { mode: 0o600 });
  runner = await pemOf(ca, RUNNER);
  sync = await pemOf(ca, SYNC);
  intruder = await pemOf(ca, INTRUDER);
  foreign = await pemOf(await createSvidCa({ trustDomain: TD }), RUNNER); // same ID, another trust bundle
  const up = await startCli(
    [
      'up',
      '--data',
      plane,
      '--trust-domain',
      TD,
      '--tls-cert',
      join(root, 'server.pem'),
      '--tls-key',
      join(root, 'server-key.pem'),
      '--client-ca',
      join(plane, 'svid-ca', 'ca.pem'),
      '--ca-allow-spiffe-id',
      RUNNER,
      '--tlog-allow-spiffe-id',
      RUNNER,
      '--tlog-allow-spiffe-id',
      SYNC,
      '--identity-allow-spiffe-id',
      `^spiffe://airlock\\.internal/airlock/(runner|mirror-sync)$`,
      '--json',
    ],
    (o) => o.trim().endsWith('}'),
  );
  stop = up.stop;
  endpoints = JSON.parse(up.stdout()) as typeof endpoints;
}, 60_000);
afterAll(async () => {
  await stop?.();
  rmSync(root, { recursive: true, force: true });
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** An HTTPS request presenting `client` (or nothing); the server is authenticated by its SPIFFE ID. */
function call(url: string, method: string, body: unknown, client: ClientPem | undefined): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        ca: bundlePem,
        ...(client ? { cert: client.cert, key: client.key } : {}),
        checkServerIdentity: (_host, cert) =>
          cert.subjectaltname === `URI:${PLANE_ID}` ? undefined : new Error(`unexpected server ${cert.subjectaltname}`),
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(text) as Record<string, unknown>;
          } catch {
            parsed = { text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A real Fulcio signing-certificate request for RUNNER: token from the plane's issuer, proof of possession. */
async function signingCertRequest(): Promise<unknown> {
  const issuer = await IdentityIssuer.open({
    dataDir: plane,
    issuerUrl: endpoints.identityIssuerUrl,
    trustDomain: TD,
  });
  const token = await issuer.issueToken({ subject: RUNNER, ttlSeconds: 120 });
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return {
    credentials: { oidcIdentityToken: token },
    publicKeyRequest: {
      publicKey: { algorithm: 'ECDSA', content: keys.publicKey.export({ format: 'pem', type: 'spki' }).toString() },
      proofOfPossession: sign('sha256', Buffer.from(RUNNER), keys.privateKey).toString('base64'),
    },
  };
}

const errorOf = (a: Answer): { code: string; message: string } =>
  (a.body.error ?? a.body) as { code: string; message: string };

describe('airlock up with per-service mTLS (SPIFFE X509-SVIDs)', () => {
  it('serves HTTPS on every endpoint', () => {
    for (const u of [endpoints.caUrl, endpoints.tlogUrl, endpoints.identityIssuerUrl]) expect(u).toMatch(/^https:/);
  });

  it('an authorized SVID passes: the CA issues a certificate (201)', { timeout: 30_000 }, async () => {
    const a = await call(`${endpoints.caUrl}/api/v2/signingCert`, 'POST', await signingCertRequest(), runner);
    expect(a.status, JSON.stringify(a.body)).toBe(201);
    const chain = (a.body.signedCertificateDetachedSct as { chain: { certificates: string[] } }).chain.certificates;
    expect(new X509Certificate(chain[0]!).subjectAltName).toBe(`URI:${RUNNER}`);
  });

  it('no client certificate: 401 MTLS_CLIENT_CERT_MISSING', async () => {
    const a = await call(`${endpoints.caUrl}/api/v2/signingCert`, 'POST', await signingCertRequest(), undefined);
    expect(a.status).toBe(401);
    expect(errorOf(a).code).toBe('MTLS_CLIENT_CERT_MISSING');
  });

  it('a certificate from another trust bundle: 401 naming the SPIFFE ID it claimed', async () => {
    const a = await call(`${endpoints.caUrl}/api/v2/signingCert`, 'POST', await signingCertRequest(), foreign);
    expect(a.status).toBe(401);
    expect(errorOf(a).code).toBe('MTLS_CLIENT_CERT_INVALID');
    expect(errorOf(a).message).toContain(`${RUNNER} does not chain to the trust bundle`);
  });

  it('a valid SVID with an unauthorized ID: 403 naming the ID, on each service', async () => {
    for (const url of [
      `${endpoints.caUrl}/api/v2/signingCert`,
      `${endpoints.tlogUrl}/api/v1/log/entries`,
      `${endpoints.identityIssuerUrl}/token`,
    ]) {
      const a = await call(url, 'POST', {}, intruder);
      expect(a.status, url).toBe(403);
      expect(errorOf(a)).toEqual({
        code: 'MTLS_SPIFFE_ID_FORBIDDEN',
        message: `SPIFFE ID ${INTRUDER} is not authorized for this service`,
      });
    }
  });

  it('allow lists are per service: mirror-sync may submit to the log but not ask the CA', async () => {
    const ca = await call(`${endpoints.caUrl}/api/v2/signingCert`, 'POST', await signingCertRequest(), sync);
    expect(ca.status).toBe(403);
    expect(errorOf(ca).message).toContain(SYNC);
    // Past the gate, the log judges the (empty) entry itself: not an mTLS refusal.
    const tlog = await call(`${endpoints.tlogUrl}/api/v1/log/entries`, 'POST', {}, sync);
    expect([401, 403]).not.toContain(tlog.status);
  });

  it('reads stay open without a client certificate', async () => {
    const a = await call(`${endpoints.caUrl}/api/v2/configuration`, 'GET', undefined, undefined);
    expect(a.status).toBe(200);
  });
});

describe('airlock admission serve --client-ca --allow-spiffe-id', () => {
  let admission: { url: string; stop: () => Promise<void> } | undefined;
  const WORKSPACE = `spiffe://${TD}/airlock/workspace/alice`;
  let workspace: ClientPem;

  beforeAll(async () => {
    workspace = await pemOf(await loadOrCreateSvidCa(plane, TD), WORKSPACE);
    const policy = join(root, 'admission-policy.yaml');
    writeFileSync(
      policy,
      [
        'apiVersion: airlock.dev/admission-policy/v1',
        'policies:',
        '  - name: runner-built',
        "    images: ['registry.invalid/**']",
        '    release:',
        '      inline:',
        '        apiVersion: airlock.dev/policy/v1',
        `        authorities: { runner: { keyless: { subject: '${RUNNER}', issuer: '${endpoints.identityIssuerUrl}' } } }`,
        `        provenance: { authorities: [runner], builderIds: ['${RUNNER}'] }`,
        '',
      ].join('\n'),
    );
    const a = await startCli(
      [
        ...['admission', 'serve', '--policy', policy, '--data', plane, '--listen', '127.0.0.1:0'],
        ...['--tls-cert', join(root, 'server.pem'), '--tls-key', join(root, 'server-key.pem')],
        ...['--client-ca', join(plane, 'svid-ca', 'ca.pem'), '--allow-spiffe-id', RUNNER],
        ...['--allow-spiffe-id', `^spiffe://airlock\\.internal/airlock/workspace/[a-z]+$`, '--json'],
      ],
      (o) => o.trim().endsWith('}'),
    );
    admission = { url: (JSON.parse(a.stdout()) as { url: string }).url, stop: a.stop };
  }, 60_000);
  afterAll(async () => admission?.stop());

  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'b7a1c1a4-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'default',
      operation: 'CREATE',
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p' }, spec: { containers: [] } },
    },
  };

  it('an authorized SVID (exact ID or allowed pattern) gets an AdmissionReview answer', async () => {
    for (const client of [runner, workspace]) {
      const a = await call(`${admission!.url}/validate`, 'POST', review, client);
      expect(a.status, JSON.stringify(a.body)).toBe(200);
      expect(a.body).toMatchObject({ kind: 'AdmissionReview', response: { uid: review.request.uid } });
    }
  });

  it('no certificate, a foreign bundle and an unauthorized ID are refused, naming the SPIFFE ID', async () => {
    const none = await call(`${admission!.url}/validate`, 'POST', review, undefined);
    expect(none.status).toBe(401);
    expect(errorOf(none).code).toBe('MTLS_CLIENT_CERT_MISSING');
    const alien = await call(`${admission!.url}/workspace`, 'POST', {}, foreign);
    expect(alien.status).toBe(401);
    expect(errorOf(alien).message).toContain(`${RUNNER} does not chain to the trust bundle`);
    const other = await call(`${admission!.url}/validate`, 'POST', review, intruder);
    expect(other.status).toBe(403);
    expect(errorOf(other)).toEqual({
      code: 'MTLS_SPIFFE_ID_FORBIDDEN',
      message: `SPIFFE ID ${INTRUDER} is not authorized for this service`,
    });
  });

  it('probes stay open without a client certificate', async () => {
    expect((await call(`${admission!.url}/healthz`, 'GET', undefined, undefined)).status).toBe(200);
  });

  it('--allow-spiffe-id without --client-ca is a usage error (exit 2)', async () => {
    const r = await runCli([
      ...['admission', 'serve', '--policy', join(root, 'admission-policy.yaml'), '--data', plane],
      ...['--tls-cert', join(root, 'server.pem'), '--tls-key', join(root, 'server-key.pem')],
      ...['--listen', '127.0.0.1:0', '--allow-spiffe-id', RUNNER, '--json'],
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(2);
    expect(r.stdout).toContain('--allow-spiffe-id needs --client-ca');
  });
});
