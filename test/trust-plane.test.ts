/**
 * Issue 2 acceptance: `airlock up`, then the stock sigstore-js client libraries sign and verify against it;
 * then every tampering the verifier must catch, each with its own error code.
 */
import { createHash, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DSSEBundleBuilder,
  FulcioSigner,
  MessageSignatureBundleBuilder,
  RekorWitness,
  type Signer,
} from '@sigstore/sign';
import { bundleFromJSON, bundleToJSON, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { BundleVerifier, type VerifyErrorCode } from '@airlock/verify';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { AirlockSigner } from '@airlock/sign';
import { runCli, startCli } from './helpers/cli.js';

const ARTIFACT = Buffer.from('the quick brown fox, hermetically built\n');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

interface Endpoints {
  tlogUrl: string;
  caUrl: string;
  identityIssuerUrl: string;
  trustDomain: string;
  trustedRoot: string;
}

let dir: string;
let up: Awaited<ReturnType<typeof startCli>>;
let endpoints: Endpoints;
let trustedRootJson: unknown;
let subject: string;

async function token(sub = subject): Promise<string> {
  const r = await runCli(['identity', 'token', '--data', dir, '--subject', sub, '--break-glass']);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-e2e-plane-'));
  up = await startCli(['up', '--data', dir, '--json'], (out) => out.includes('"tlogUrl"') && out.trim().endsWith('}'));
  endpoints = JSON.parse(readFileSync(join(dir, 'endpoints.json'), 'utf8')) as Endpoints;
  trustedRootJson = JSON.parse(readFileSync(join(dir, 'trusted_root.json'), 'utf8'));
  subject = `spiffe://${endpoints.trustDomain}/ci/release`;
});

afterAll(async () => {
  await up?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function stockSigner(tok: string): Signer {
  return new FulcioSigner({ fulcioBaseURL: endpoints.caUrl, identityProvider: { getToken: async () => tok } });
}

function stockVerify(bundle: SerializedBundle, artifact: Buffer | undefined, san: string): void {
  const trust = toTrustMaterial(TrustedRoot.fromJSON(trustedRootJson));
  const verifier = new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: 1 });
  verifier.verify(toSignedEntity(bundleFromJSON(bundle), artifact), {
    subjectAlternativeName: `^${san.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`,
    extensions: { issuer: endpoints.identityIssuerUrl },
  });
}

describe('airlock up + stock sigstore-js', () => {
  it('writes endpoints.json and a trusted root that names the log and the CA chain', () => {
    const root = trustedRootJson as {
      tlogs: Array<{ baseUrl: string }>;
      certificateAuthorities: Array<{ certChain: { certificates: unknown[] } }>;
    };
    expect(root.tlogs[0]!.baseUrl).toBe(endpoints.tlogUrl);
    expect(root.certificateAuthorities[0]!.certChain.certificates).toHaveLength(2);
  });

  let blobBundle: SerializedBundle;
  let dsseBundle: SerializedBundle;
  const statement = {
    _type: 'https://in-toto.io/Statement/v1',
    subject: [{ name: 'fox.txt', digest: { sha256: sha256(ARTIFACT) } }],
    predicateType: 'https://airlock.dev/attestation/test/v1',
    predicate: { ok: true },
  };

  it('stock @sigstore/sign signs a blob and a DSSE statement against the plane', async () => {
    const tok = await token();
    const witness = new RekorWitness({ rekorBaseURL: endpoints.tlogUrl, entryType: 'dsse', fetchOnConflict: true });
    blobBundle = bundleToJSON(
      await new MessageSignatureBundleBuilder({ signer: stockSigner(tok), witnesses: [witness] }).create({
        data: ARTIFACT,
      }),
    );
    dsseBundle = bundleToJSON(
      await new DSSEBundleBuilder({ signer: stockSigner(tok), witnesses: [witness] }).create({
        data: Buffer.from(JSON.stringify(statement)),
        type: 'application/vnd.in-toto+json',
      }),
    );
    expect(blobBundle.verificationMaterial.tlogEntries).toHaveLength(1);
    expect(dsseBundle.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
    expect(dsseBundle.verificationMaterial.tlogEntries[0]!.kindVersion?.kind).toBe('dsse');
  });

  it('stock @sigstore/verify verifies both with the generated trusted root', () => {
    expect(() => stockVerify(blobBundle, ARTIFACT, subject)).not.toThrow();
    expect(() => stockVerify(dsseBundle, undefined, subject)).not.toThrow();
  });

  it('a policy naming another identity is rejected (stock verifier and airlock verifier)', () => {
    const other = `spiffe://${endpoints.trustDomain}/ci/someone-else`;
    expect(() => stockVerify(blobBundle, ARTIFACT, other)).toThrow(/identity|subject|SAN|match/i);
    const v = new BundleVerifier(trustedRootJson);
    expect(() =>
      v.verify(dsseBundle, { artifact: ARTIFACT, policy: { subject: other, issuer: endpoints.identityIssuerUrl } }),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_POLICY' }));
    // A prefix of the real identity must not match: policies are anchored.
    expect(() =>
      v.verify(dsseBundle, {
        artifact: ARTIFACT,
        policy: { subjectRegExp: `spiffe://${endpoints.trustDomain}/ci`, issuer: endpoints.identityIssuerUrl },
      }),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_POLICY' }));
    // Wrong issuer with the right subject.
    expect(() =>
      v.verify(dsseBundle, { artifact: ARTIFACT, policy: { subject, issuer: 'https://accounts.example.com' } }),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_POLICY' }));
  });

  it('airlock sign / attest / verify CLI round-trip', { timeout: 240_000 }, async () => {
    const file = join(dir, 'cli-artifact.bin');
    writeFileSync(file, ARTIFACT);
    const sign = await runCli(['sign', file, '--data', dir, '--subject', subject, '--json']);
    expect(sign.code, sign.stderr).toBe(0);
    const signed = JSON.parse(sign.stdout) as { bundle: string; logIndex: string };
    const verify = await runCli([
      'verify',
      file,
      '--bundle',
      signed.bundle,
      '--trusted-root',
      join(dir, 'trusted_root.json'),
      '--certificate-identity',
      subject,
      '--certificate-oidc-issuer',
      endpoints.identityIssuerUrl,
      '--json',
    ]);
    expect(verify.code, verify.stdout + verify.stderr).toBe(0);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: true, signer: { subjectAlternativeName: subject } });

    const predicate = join(dir, 'predicate.json');
    writeFileSync(predicate, JSON.stringify({ builder: 'test' }));
    const attest = await runCli([
      'attest',
      file,
      '--predicate-type',
      'https://airlock.dev/attestation/test/v1',
      '--predicate',
      predicate,
      '--bundle',
      `${file}.att.json`,
      '--data',
      dir,
      '--subject',
      subject,
    ]);
    expect(attest.code, attest.stderr).toBe(0);
    const v2 = await runCli([
      'verify',
      file,
      '--bundle',
      `${file}.att.json`,
      '--data',
      dir,
      '--certificate-identity-regexp',
      `spiffe://${endpoints.trustDomain}/ci/.*`,
      '--certificate-oidc-issuer',
      endpoints.identityIssuerUrl,
      '--predicate-type',
      'https://airlock.dev/attestation/test/v1',
    ]);
    expect(v2.code, v2.stderr).toBe(0);

    // Wrong identity → exit 1 with the policy error named.
    const bad = await runCli([
      'verify',
      file,
      '--bundle',
      signed.bundle,
      '--data',
      dir,
      '--certificate-identity',
      `${subject}-x`,
      '--certificate-oidc-issuer',
      endpoints.identityIssuerUrl,
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('VERIFY_POLICY');
    // Missing policy → usage error (exit 2), never "verified without identity".
    const noPolicy = await runCli(['verify', file, '--bundle', signed.bundle, '--data', dir]);
    expect(noPolicy.code).toBe(2);
  });

  it('key-based signing: airlock sign --key / verify --key, logged in the transparency log', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyFile = join(dir, 'signing-key.pem');
    const pubFile = join(dir, 'signing-key.pub');
    writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }));
    const file = join(dir, 'key-signed.bin');
    writeFileSync(file, ARTIFACT);
    const sign = await runCli(['sign', file, '--data', dir, '--key', keyFile, '--json']);
    expect(sign.code, sign.stdout + sign.stderr).toBe(0);
    const { bundle } = JSON.parse(sign.stdout) as { bundle: string };
    const saved = JSON.parse(readFileSync(bundle, 'utf8')) as SerializedBundle;
    expect(saved.verificationMaterial.tlogEntries).toHaveLength(1);
    const ok = await runCli(['verify', file, '--bundle', bundle, '--data', dir, '--key', pubFile, '--json']);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    // Another key does not verify it.
    const other = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const otherFile = join(dir, 'other.pub');
    writeFileSync(otherFile, other.export({ type: 'spki', format: 'pem' }));
    const bad = await runCli(['verify', file, '--bundle', bundle, '--data', dir, '--key', otherFile]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/VERIFY_(SIGNATURE|TLOG_BODY)/);
  });

  it(
    'sigstore-conformance entry point: sign-bundle and verify-bundle by exit code, PATH and DIGEST modes',
    { timeout: 240_000 },
    async () => {
      const file = join(dir, 'conf.txt');
      writeFileSync(file, 'conformance\n');
      const signingConfig = join(dir, 'signing_config.json');
      writeFileSync(
        signingConfig,
        JSON.stringify({
          mediaType: 'application/vnd.dev.sigstore.signingconfig.v0.2+json',
          caUrls: [{ url: endpoints.caUrl }],
          rekorTlogUrls: [{ url: endpoints.tlogUrl, majorApiVersion: 1 }],
        }),
      );
      const tok = await token();
      const bundle = join(dir, 'conf.sigstore.json');
      const s = await runCli([
        'conformance',
        'sign-bundle',
        '--identity-token',
        tok,
        '--bundle',
        bundle,
        '--signing-config',
        signingConfig,
        file,
      ]);
      expect(s.code, s.stderr).toBe(0);
      const common = [
        '--bundle',
        bundle,
        '--certificate-identity',
        subject,
        '--certificate-oidc-issuer',
        endpoints.identityIssuerUrl,
        '--trusted-root',
        join(dir, 'trusted_root.json'),
      ];
      expect((await runCli(['conformance', 'verify-bundle', ...common, file])).code).toBe(0);
      writeFileSync(file, 'tampered\n');
      expect((await runCli(['conformance', 'verify-bundle', ...common, file])).code).not.toBe(0);

      // in-toto: DIGEST mode checks the subject digest.
      const stmtFile = join(dir, 'stmt.json');
      writeFileSync(stmtFile, JSON.stringify(statement));
      const dsse = join(dir, 'conf-dsse.sigstore.json');
      expect(
        (
          await runCli([
            'conformance',
            'sign-bundle',
            '--in-toto',
            '--identity-token',
            tok,
            '--bundle',
            dsse,
            '--signing-config',
            signingConfig,
            stmtFile,
          ])
        ).code,
      ).toBe(0);
      const dcommon = [
        '--bundle',
        dsse,
        '--certificate-identity',
        subject,
        '--certificate-oidc-issuer',
        endpoints.identityIssuerUrl,
        '--trusted-root',
        join(dir, 'trusted_root.json'),
      ];
      expect((await runCli(['conformance', 'verify-bundle', ...dcommon, `sha256:${sha256(ARTIFACT)}`])).code).toBe(0);
      expect((await runCli(['conformance', 'verify-bundle', ...dcommon, `sha256:${'0'.repeat(64)}`])).code).not.toBe(0);
    },
  );
});

describe('tampering is caught, each with a specific error', () => {
  let verifier: BundleVerifier;
  let blob: SerializedBundle;
  let dsse: SerializedBundle;
  let other: SerializedBundle;
  let policy: { subject: string; issuer: string };

  beforeAll(async () => {
    verifier = new BundleVerifier(trustedRootJson);
    policy = { subject, issuer: endpoints.identityIssuerUrl };
    const signer = new AirlockSigner({
      fulcioUrl: endpoints.caUrl,
      rekorUrl: endpoints.tlogUrl,
      identity: await token(),
    });
    blob = await signer.signBlob(ARTIFACT);
    other = await signer.signBlob(Buffer.from('another artifact'));
    dsse = await signer.attest({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'fox.txt', digest: { sha256: sha256(ARTIFACT) } }],
      predicateType: 'https://airlock.dev/attestation/test/v1',
      predicate: {},
    });
  });

  const clone = (b: SerializedBundle): SerializedBundle => JSON.parse(JSON.stringify(b)) as SerializedBundle;
  const flipB64 = (b64: string, at = -3): string => {
    const buf = Buffer.from(b64, 'base64');
    const i = at < 0 ? buf.length + at : at;
    buf[i] = buf[i]! ^ 0x01;
    return buf.toString('base64');
  };
  const expectCode = (fn: () => unknown, code: VerifyErrorCode): void => {
    expect(fn).toThrow(expect.objectContaining({ code }));
  };

  it('the untouched bundles verify, and both are Sigstore bundle v0.3 with a single leaf certificate', () => {
    for (const b of [blob, dsse]) {
      expect(b.mediaType).toBe('application/vnd.dev.sigstore.bundle.v0.3+json');
      expect(Object.keys(b.verificationMaterial)).toContain('certificate');
    }
    expect(verifier.verify(blob, { artifact: ARTIFACT, policy }).signer.subjectAlternativeName).toBe(subject);
    expect(verifier.verify(dsse, { artifact: ARTIFACT, policy }).statement?.predicateType).toBe(
      'https://airlock.dev/attestation/test/v1',
    );
  });

  it('a flipped byte in the artifact', () => {
    const art = Buffer.from(ARTIFACT);
    art[3] = art[3]! ^ 0x20;
    // The bundle's digest is compared with the artifact before the signature is.
    expectCode(() => verifier.verify(blob, { artifact: art, policy }), 'VERIFY_MESSAGE_DIGEST');
    expectCode(() => verifier.verify(dsse, { artifact: art, policy }), 'VERIFY_SUBJECT_MISMATCH');
  });

  it('a flipped byte in the signature', () => {
    const b = clone(blob);
    if (!('messageSignature' in b) || !b.messageSignature) throw new Error('expected a message signature');
    b.messageSignature.signature = flipB64(b.messageSignature.signature, 10);
    expectCode(() => verifier.verify(b, { artifact: ARTIFACT, policy }), 'VERIFY_SIGNATURE');
    const d = clone(dsse);
    if (!('dsseEnvelope' in d) || !d.dsseEnvelope) throw new Error('expected DSSE');
    d.dsseEnvelope.signatures[0]!.sig = flipB64(d.dsseEnvelope.signatures[0]!.sig, 10);
    expectCode(() => verifier.verify(d, { artifact: ARTIFACT, policy }), 'VERIFY_SIGNATURE');
  });

  it('a flipped byte in the certificate', () => {
    const b = clone(blob);
    const vm = b.verificationMaterial as { certificate?: { rawBytes: string } };
    vm.certificate!.rawBytes = flipB64(vm.certificate!.rawBytes, -5); // inside the CA's signature over the leaf
    expectCode(() => verifier.verify(b, { artifact: ARTIFACT, policy }), 'VERIFY_CERTIFICATE');
  });

  it('a flipped byte in the signed entry timestamp (SET)', () => {
    const b = clone(blob);
    const e = b.verificationMaterial.tlogEntries[0]!;
    e.inclusionPromise!.signedEntryTimestamp = flipB64(e.inclusionPromise!.signedEntryTimestamp, 12);
    expectCode(() => verifier.verify(b, { artifact: ARTIFACT, policy }), 'VERIFY_TLOG_PROMISE');
  });

  it('a flipped byte in an inclusion proof hash', async () => {
    // Make sure the tree has grown so the proof has hashes to flip.
    const b = clone(other);
    const proof = b.verificationMaterial.tlogEntries[0]!.inclusionProof!;
    expect(proof.hashes.length).toBeGreaterThan(0);
    proof.hashes[0] = flipB64(proof.hashes[0]!, 0);
    expectCode(() => verifier.verify(b, { artifact: Buffer.from('another artifact'), policy }), 'VERIFY_TLOG_PROOF');
  });

  const mutateCheckpoint = (b: SerializedBundle, f: (note: string) => string): SerializedBundle => {
    const c = clone(b);
    const cp = c.verificationMaterial.tlogEntries[0]!.inclusionProof!.checkpoint;
    cp.envelope = f(cp.envelope);
    return c;
  };

  it('a flipped byte in the checkpoint signature', () => {
    const b = mutateCheckpoint(blob, (note) => {
      const [text, sigs] = note.split('\n\n');
      const line = sigs!.split('\n')[0]!;
      const parts = line.split(' ');
      parts[2] = flipB64(parts[2]!, -4);
      return `${text}\n\n${parts.join(' ')}\n`;
    });
    expectCode(() => verifier.verify(b, { artifact: ARTIFACT, policy }), 'VERIFY_TLOG_PROOF');
  });

  it('a flipped byte in the checkpoint origin', () => {
    const b = mutateCheckpoint(blob, (note) => {
      const first = note.charCodeAt(0);
      return String.fromCharCode(first ^ 0x01) + note.slice(1);
    });
    expectCode(() => verifier.verify(b, { artifact: ARTIFACT, policy }), 'VERIFY_TLOG_PROOF');
  });

  it('a log entry whose body does not match the bundle', () => {
    const b = clone(blob);
    b.verificationMaterial.tlogEntries = clone(other).verificationMaterial.tlogEntries; // a genuine entry, for another signature
    expectCode(() => verifier.verify(b, { artifact: ARTIFACT, policy }), 'VERIFY_TLOG_BODY');
  });

  it('a bundle with no log entry has no trusted time and is refused', () => {
    const b = clone(blob);
    b.verificationMaterial.tlogEntries = [];
    expect(() => verifier.verify(b, { artifact: ARTIFACT, policy })).toThrow(
      expect.objectContaining({ code: expect.stringMatching(/^VERIFY_(TIMESTAMP|TLOG_MISSING)$/) }),
    );
  });

  it('a DSSE payloadType mismatch', async () => {
    const signer = new AirlockSigner({
      fulcioUrl: endpoints.caUrl,
      rekorUrl: endpoints.tlogUrl,
      identity: await token(),
    });
    const textBundle = await signer.signEnvelope(Buffer.from(JSON.stringify({ not: 'in-toto' })), 'text/plain');
    expectCode(() => verifier.verify(textBundle, { artifact: ARTIFACT, policy }), 'VERIFY_PAYLOAD_TYPE');
    // Rewriting the payloadType in the bundle breaks the PAE signature instead.
    const d = clone(dsse);
    if (!('dsseEnvelope' in d) || !d.dsseEnvelope) throw new Error('expected DSSE');
    d.dsseEnvelope.payloadType = 'application/vnd.in-toto+jsonx';
    expect(() =>
      verifier.verify(d, { artifact: ARTIFACT, policy, expectedPayloadType: 'application/vnd.in-toto+jsonx' }),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_SIGNATURE' }));
  });

  it('a subject digest mismatch', () => {
    expectCode(
      () => verifier.verify(dsse, { artifactDigest: { sha256: sha256(Buffer.from('something else')) }, policy }),
      'VERIFY_SUBJECT_MISMATCH',
    );
  });

  it('a trusted root authority without validFor.start is refused', () => {
    const root = JSON.parse(JSON.stringify(trustedRootJson)) as {
      certificateAuthorities: Array<{ validFor: Record<string, unknown> }>;
    };
    delete root.certificateAuthorities[0]!.validFor.start;
    expect(() => new BundleVerifier(root)).toThrow(expect.objectContaining({ code: 'VERIFY_TRUSTED_ROOT' }));
  });
});

/** A raw Fulcio v2 signingCert request with proof of possession over the subject. */
function requestCertificate(
  caUrl: string,
  token: string,
  subject: string,
  keys: { privateKey: KeyObject; publicKey: KeyObject },
): Promise<Response> {
  return fetch(`${caUrl}/api/v2/signingCert`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      credentials: { oidcIdentityToken: token },
      publicKeyRequest: {
        publicKey: { algorithm: 'ECDSA', content: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString() },
        proofOfPossession: cryptoSign('sha256', Buffer.from(subject), keys.privateKey).toString('base64'),
      },
    }),
  });
}

describe('certificates are short-lived and tokens are checked', () => {
  let plane: RunningTrustPlane;
  let pdir: string;
  beforeAll(async () => {
    pdir = mkdtempSync(join(tmpdir(), 'airlock-e2e-expiry-'));
    plane = await startTrustPlane({ dataDir: pdir, certValiditySeconds: 2 });
  });
  afterAll(async () => {
    await plane?.close();
    rmSync(pdir, { recursive: true, force: true });
  });

  it('an expired certificate used after its window is refused (the log time is outside the validity)', async () => {
    const sub = `spiffe://${plane.endpoints.trustDomain}/ci/late`;
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { privateKey } = keys;
    const res = await requestCertificate(plane.endpoints.caUrl, await plane.issueToken(sub), sub, keys);
    expect(res.status).toBe(201);
    const body = (await res.json()) as { signedCertificateDetachedSct: { chain: { certificates: string[] } } };
    const leafPem = body.signedCertificateDetachedSct.chain.certificates[0]!;
    await new Promise((r) => setTimeout(r, 3_000)); // let the 2 s certificate expire
    const lateSigner: Signer = {
      sign: async (data: Buffer) => ({
        signature: cryptoSign('sha256', data, privateKey),
        key: { $case: 'x509Certificate', certificate: leafPem },
      }),
    };
    const late = bundleToJSON(
      await new MessageSignatureBundleBuilder({
        signer: lateSigner,
        witnesses: [new RekorWitness({ rekorBaseURL: plane.endpoints.tlogUrl })],
      }).create({ data: ARTIFACT }),
    );
    const v = new BundleVerifier(plane.trustedRoot);
    expect(() =>
      v.verify(late, { artifact: ARTIFACT, policy: { subject: sub, issuer: plane.endpoints.identityIssuerUrl } }),
    ).toThrow(expect.objectContaining({ code: 'VERIFY_CERTIFICATE' }));
  });

  it('the CA refuses (401) tokens that are expired, for the wrong audience, badly signed or from an untrusted issuer', async () => {
    const sub = `spiffe://${plane.endpoints.trustDomain}/ci/x`;
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const request = (tok: string): Promise<Response> => requestCertificate(plane.endpoints.caUrl, tok, sub, keys);
    const good = await plane.issueToken(sub);
    expect((await request(good)).status).toBe(201);

    const [h, p, s] = good.split('.') as [string, string, string];
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const forge = (changes: Record<string, unknown>): string =>
      `${h}.${Buffer.from(JSON.stringify({ ...payload, ...changes })).toString('base64url')}.${s}`;
    const sig = Buffer.from(s, 'base64url');
    sig[5] = sig[5]! ^ 0x01;
    expect((await request(`${h}.${p}.${sig.toString('base64url')}`)).status).toBe(401); // bad signature
    expect((await request(forge({ aud: 'not-sigstore' }))).status).toBe(401); // wrong audience (and signature)

    // An issuer the CA was not configured with: a second plane's issuer, genuinely signed.
    const otherDir = mkdtempSync(join(tmpdir(), 'airlock-e2e-other-'));
    const otherPlane = await startTrustPlane({ dataDir: otherDir });
    try {
      const foreign = await otherPlane.issueToken(sub);
      const r = await request(foreign);
      expect(r.status).toBe(401);
    } finally {
      await otherPlane.close();
      rmSync(otherDir, { recursive: true, force: true });
    }
    const expired = await plane.issueToken(sub, { ttlSeconds: 600, issuedAt: new Date(Date.now() - 3_600_000) });
    expect((await request(expired)).status).toBe(401); // expired 50 minutes ago
  });
});

describe('airlock up --issuer-config: the CA also trusts an external OIDC issuer', () => {
  it('accepts a workload token from a second, configured issuer and certifies its identity', async () => {
    const otherDir = mkdtempSync(join(tmpdir(), 'airlock-e2e-ext-issuer-'));
    const mainDir = mkdtempSync(join(tmpdir(), 'airlock-e2e-main-'));
    // The "external" issuer: another plane's embedded issuer in its own trust domain (as SPIRE's OIDC discovery
    // provider would be), reachable over loopback.
    const external = await startTrustPlane({ dataDir: otherDir, trustDomain: 'spire.example.internal' });
    let proc: Awaited<ReturnType<typeof startCli>> | undefined;
    try {
      const cfg = join(mainDir, 'issuers.json');
      writeFileSync(
        cfg,
        JSON.stringify({
          issuers: [
            { issuerUrl: external.endpoints.identityIssuerUrl, type: 'spiffe', trustDomain: 'spire.example.internal' },
          ],
        }),
      );
      // Plain http is refused without the explicit test switch: its keys would be fetched over http.
      const refused = await runCli(['up', '--data', mainDir, '--issuer-config', cfg, '--json']);
      expect(refused.code, refused.stdout + refused.stderr).toBe(2);
      expect(refused.stdout).toMatch(/must be https/);
      proc = await startCli(
        ['up', '--data', mainDir, '--issuer-config', cfg, '--allow-insecure-issuer', '--json'],
        (out) => out.trim().endsWith('}'),
      );
      const ep = JSON.parse(readFileSync(join(mainDir, 'endpoints.json'), 'utf8')) as Endpoints;
      const sub = 'spiffe://spire.example.internal/ns/ci/sa/builder';
      const signer = new AirlockSigner({
        fulcioUrl: ep.caUrl,
        rekorUrl: ep.tlogUrl,
        identity: await external.issueToken(sub),
      });
      const bundle = await signer.signBlob(ARTIFACT);
      const root = JSON.parse(readFileSync(join(mainDir, 'trusted_root.json'), 'utf8')) as unknown;
      const r = new BundleVerifier(root).verify(bundle, {
        artifact: ARTIFACT,
        policy: { subject: sub, issuer: external.endpoints.identityIssuerUrl },
      });
      expect(r.signer).toMatchObject({ subjectAlternativeName: sub, issuer: external.endpoints.identityIssuerUrl });
      // The embedded issuer is still trusted alongside the external one.
      const own = await runCli([
        'identity',
        'token',
        '--data',
        mainDir,
        '--subject',
        `spiffe://${ep.trustDomain}/ci/own`,
        '--break-glass',
      ]);
      expect(own.code, own.stderr).toBe(0);
      const ownBundle = await new AirlockSigner({
        fulcioUrl: ep.caUrl,
        rekorUrl: ep.tlogUrl,
        identity: own.stdout.trim(),
      }).signBlob(ARTIFACT);
      expect(
        new BundleVerifier(root).verify(ownBundle, {
          artifact: ARTIFACT,
          policy: { subject: `spiffe://${ep.trustDomain}/ci/own`, issuer: ep.identityIssuerUrl },
        }).signer.issuer,
      ).toBe(ep.identityIssuerUrl);
    } finally {
      await proc?.stop();
      await external.close();
      rmSync(otherDir, { recursive: true, force: true });
      rmSync(mainDir, { recursive: true, force: true });
    }
  });

  it('refuses a malformed issuer config with a usage error naming the problem', async () => {
    const d = mkdtempSync(join(tmpdir(), 'airlock-e2e-badcfg-'));
    try {
      const cfg = join(d, 'issuers.json');
      writeFileSync(cfg, JSON.stringify({ issuers: [{ issuerUrl: 'http://127.0.0.1:9', type: 'github' }] }));
      const r = await runCli(['up', '--data', join(d, 'data'), '--issuer-config', cfg]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/issuers\[0\]/);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
