/**
 * Verification parity for Rekor v2 (hashedrekord 0.0.2) log entries: bundles made by stock sigstore-js bundle
 * builders against the plane's `POST /api/v2/log/entries` (and mutated), each with the verdict of stock
 * @sigstore/verify 3.1.1 and of airlock's BundleVerifier. Key-signed bundles: Rekor v2 entries carry no SET, and
 * key bundles are not time-checked, so no TSA is needed here. A custom Witness posts the v2 request with a
 * `publicKey` verifier (sigstore-js 4 hard-codes `x509Certificate`, which a key-signed bundle cannot use).
 *
 * Also: airlock's optional witness requirement (N C2SP cosignatures on each entry's checkpoint), which stock
 * @sigstore/verify does not have.
 */
import { createPublicKey, generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bundleFromJSON,
  bundleToJSON,
  type SerializedBundle,
  type TransparencyLogEntry as BundleTlogEntry,
} from '@sigstore/bundle';
import { SigningConfig, TransparencyLogEntry, TrustedRoot } from '@sigstore/protobuf-specs';
import {
  bundleBuilderFromSigningConfig,
  DSSEBundleBuilder,
  MessageSignatureBundleBuilder,
  type Signer,
  type Witness,
} from '@sigstore/sign';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { cosignCheckpoint, witnessVkey } from '@airlock/tlog';
import { BundleVerifier } from '@airlock/verify';

const ARTIFACT = Buffer.from('rekor v2 parity\n');
const HINT = 'v2-key';
const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const publicKeyPem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const spkiB64 = key.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const w1 = generateKeyPairSync('ed25519');
const w2 = generateKeyPairSync('ed25519');
const W1 = 'witness.example/w1';
const W2 = 'witness.example/w2';

let plane: RunningTrustPlane;
let dir: string;
let trustedRoot: unknown;
let blob: SerializedBundle;
let dsse: SerializedBundle;

const signer: Signer = {
  sign: async (data: Buffer) => ({
    signature: sign('sha256', data, key.privateKey),
    key: { $case: 'publicKey', publicKey: publicKeyPem, hint: HINT },
  }),
};

/** A Witness posting Rekor v2 CreateEntryRequests with a publicKey verifier. */
function v2Witness(url: string): Witness {
  const verifier = { publicKey: { rawBytes: spkiB64 }, keyDetails: 'PKIX_ECDSA_P256_SHA_256' };
  return {
    async testify(content) {
      const request =
        content.$case === 'messageSignature'
          ? {
              hashedRekordRequestV002: {
                digest: Buffer.from(content.messageSignature.messageDigest!.digest).toString('base64'),
                signature: { content: Buffer.from(content.messageSignature.signature).toString('base64'), verifier },
              },
            }
          : {
              dsseRequestV002: {
                envelope: {
                  payload: Buffer.from(content.dsseEnvelope.payload).toString('base64'),
                  payloadType: content.dsseEnvelope.payloadType,
                  signatures: content.dsseEnvelope.signatures.map((s) => ({
                    sig: Buffer.from(s.sig).toString('base64'),
                    keyid: s.keyid,
                  })),
                },
                verifiers: [verifier],
              },
            };
      const res = await fetch(`${url}/api/v2/log/entries`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
      });
      if (res.status !== 201) throw new Error(`v2 log answered ${res.status}: ${await res.text()}`);
      return { tlogEntries: [TransparencyLogEntry.fromJSON(await res.json()) as BundleTlogEntry] };
    },
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-v2-'));
  plane = await startTrustPlane({ dataDir: dir });
  trustedRoot = plane.trustedRoot;
  const witnesses = [v2Witness(plane.endpoints.tlogUrl)];
  blob = bundleToJSON(await new MessageSignatureBundleBuilder({ signer, witnesses }).create({ data: ARTIFACT }));
  dsse = bundleToJSON(
    await new DSSEBundleBuilder({ signer, witnesses }).create({
      data: Buffer.from('{}'),
      type: 'application/vnd.in-toto+json',
    }),
  );
});

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function stockVerdict(bundle: SerializedBundle, artifact = ARTIFACT): string {
  try {
    const trust = toTrustMaterial(TrustedRoot.fromJSON(trustedRoot), (hint: string) => {
      if (hint !== HINT) throw new Error(`unknown key ${hint}`);
      return { publicKey: createPublicKey(publicKeyPem), validFor: () => true };
    });
    new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: 0 }).verify(
      toSignedEntity(bundleFromJSON(bundle), artifact),
    );
    return 'ok';
  } catch (err) {
    return `refused ${(err as { code?: string }).code ?? (err as Error).message}`;
  }
}

function airlockVerdict(bundle: SerializedBundle, opts: { witnesses?: string[]; threshold?: number } = {}): string {
  try {
    new BundleVerifier(trustedRoot, {
      publicKeys: { [HINT]: publicKeyPem },
      ...(opts.witnesses ? { witnesses: { keys: opts.witnesses, threshold: opts.threshold ?? 1 } } : {}),
    }).verify(bundle, { artifact: ARTIFACT, allowAnyIdentity: true });
    return 'ok';
  } catch (err) {
    return `refused ${(err as { code?: string }).code ?? (err as Error).message}`;
  }
}

type Mutate = (b: SerializedBundle) => void;
const clone = (b: SerializedBundle, m: Mutate = () => {}): SerializedBundle => {
  const c = structuredClone(b);
  m(c);
  return c;
};
const entry0 = (b: SerializedBundle) => b.verificationMaterial.tlogEntries[0]!;
const envelope = (b: SerializedBundle): string => entry0(b).inclusionProof!.checkpoint!.envelope;
const setEnvelope = (b: SerializedBundle, e: string) => (entry0(b).inclusionProof!.checkpoint!.envelope = e);
const logLine = (e: string): string => e.slice(e.indexOf('\n\n') + 2);
const noteText = (e: string): string => e.slice(0, e.indexOf('\n\n') + 2);
const cosigned = (e: string, ...ws: Array<[string, typeof w1]>) =>
  ws.reduce((acc, [name, k]) => cosignCheckpoint(acc, name, k.privateKey), e);

describe('Rekor v2 entries: stock @sigstore/verify 3.1.1 vs airlock verify', () => {
  const cases: Array<{ name: string; bundle: () => SerializedBundle; stock: RegExp; airlock: RegExp }> = [
    { name: 'valid hashedrekord 0.0.2 entry', bundle: () => blob, stock: /^ok$/, airlock: /^ok$/ },
    {
      name: 'entry without inclusion proof',
      bundle: () => clone(blob, (b) => delete entry0(b).inclusionProof),
      stock: /^refused/,
      airlock: /^refused/,
    },
    {
      name: 'checkpoint with an unknown signer after the log (witness cosignature)',
      bundle: () => clone(blob, (b) => setEnvelope(b, cosigned(envelope(b), [W1, w1]))),
      stock: /^ok$/,
      airlock: /^ok$/,
    },
    {
      name: 'checkpoint with two cosignatures',
      bundle: () => clone(blob, (b) => setEnvelope(b, cosigned(envelope(b), [W1, w1], [W2, w2]))),
      stock: /^ok$/,
      airlock: /^ok$/,
    },
    {
      name: 'checkpoint with only a witness signature (log line removed)',
      bundle: () =>
        clone(blob, (b) => {
          const e = cosigned(envelope(b), [W1, w1]);
          setEnvelope(b, noteText(e) + logLine(e).split('\n').slice(1).join('\n'));
        }),
      stock: /^refused TLOG_INCLUSION_PROOF_ERROR/,
      airlock: /^refused VERIFY_TLOG_/,
    },
    {
      name: 'kindVersion claims 0.0.1 for a 0.0.2 body',
      bundle: () => clone(blob, (b) => (entry0(b).kindVersion!.version = '0.0.1')),
      stock: /^refused TLOG_BODY_ERROR/,
      airlock: /^refused VERIFY_TLOG_BODY/,
    },
    {
      name: 'messageDigest other than the logged digest',
      bundle: () =>
        clone(blob, (b) => {
          const md = b.messageSignature!.messageDigest!;
          const d = Buffer.from(md.digest, 'base64');
          d[0]! ^= 1;
          md.digest = d.toString('base64');
        }),
      stock: /^refused/,
      airlock: /^refused/,
    },
    {
      name: 'DSSE logged as hashedrekord over the PAE digest (needs @sigstore/verify ≥ 4.1)',
      bundle: () => dsse,
      stock: /^refused TLOG_BODY_ERROR/,
      airlock: /^refused VERIFY_TLOG_BODY/,
    },
  ];

  it.each(cases)('$name', ({ bundle, stock, airlock }) => {
    const b = bundle();
    const artifact = b.dsseEnvelope ? Buffer.from('{}') : ARTIFACT;
    expect(stockVerdict(b, artifact)).toMatch(stock);
    expect(airlockVerdict(b)).toMatch(airlock);
  });
});

describe('airlock verify: required witness cosignatures', () => {
  const vkeys = () => [witnessVkey(W1, w1.publicKey), witnessVkey(W2, w2.publicKey)];
  it.each([
    { name: 'one of one required', witnesses: [[W1, w1]] as Array<[string, typeof w1]>, threshold: 1, verdict: /^ok$/ },
    {
      name: 'two of two required, both present',
      witnesses: [
        [W1, w1],
        [W2, w2],
      ] as Array<[string, typeof w1]>,
      threshold: 2,
      verdict: /^ok$/,
    },
    {
      name: 'two required, one present',
      witnesses: [[W1, w1]] as Array<[string, typeof w1]>,
      threshold: 2,
      verdict: /^refused VERIFY_TLOG_WITNESS/,
    },
    {
      name: 'one required, none present',
      witnesses: [] as Array<[string, typeof w1]>,
      threshold: 1,
      verdict: /^refused VERIFY_TLOG_WITNESS/,
    },
    {
      name: 'a cosignature by a key not configured does not count',
      witnesses: [[W1, w2]] as Array<[string, typeof w1]>,
      threshold: 1,
      verdict: /^refused VERIFY_TLOG_WITNESS/,
    },
  ])('$name', ({ witnesses, threshold, verdict }) => {
    const b = clone(blob, (x) => setEnvelope(x, cosigned(envelope(x), ...witnesses)));
    expect(stockVerdict(b)).toBe('ok');
    expect(airlockVerdict(b, { witnesses: vkeys(), threshold })).toMatch(verdict);
  });
});

describe('stock sigstore-js signing through signing_config.json with Rekor v2 and the plane TSA', () => {
  it('a certificate-signed blob bundle (v2 entry + RFC 3161 timestamp) passes stock @sigstore/verify and airlock verify', async () => {
    const cfg = SigningConfig.fromJSON(JSON.parse(readFileSync(plane.endpoints.signingConfig!, 'utf8')));
    // The plane lists both APIs of its one log; stock clients take v1 first (see README), so pick v2 here.
    expect(cfg.rekorTlogUrls.map((s) => s.majorApiVersion)).toEqual([1, 2]);
    const v2Only = { ...cfg, rekorTlogUrls: cfg.rekorTlogUrls.filter((s) => s.majorApiVersion === 2) };
    const subject = `spiffe://${plane.endpoints.trustDomain}/v2-signer`;
    const builder = bundleBuilderFromSigningConfig({
      signingConfig: v2Only,
      identityProvider: { getToken: () => plane.issueToken(subject) },
      bundleType: 'messageSignature',
    });
    const bundle = bundleToJSON(await builder.create({ data: ARTIFACT }));
    const entry = bundle.verificationMaterial.tlogEntries[0]!;
    expect(entry.kindVersion).toEqual({ kind: 'hashedrekord', version: '0.0.2' });
    expect(entry.inclusionPromise).toBeUndefined();
    expect(bundle.verificationMaterial.timestampVerificationData?.rfc3161Timestamps).toHaveLength(1);
    const trust = toTrustMaterial(TrustedRoot.fromJSON(plane.trustedRoot));
    new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: 1 }).verify(
      toSignedEntity(bundleFromJSON(bundle), ARTIFACT),
    );
    const result = new BundleVerifier(plane.trustedRoot).verify(bundle, {
      artifact: ARTIFACT,
      policy: { subject, issuer: plane.endpoints.identityIssuerUrl },
    });
    expect(result.signer.subjectAlternativeName).toBe(subject);
    // Without the TSA token a v2 entry gives no trusted time: both refuse.
    const untimed = clone(bundle, (b) => delete b.verificationMaterial.timestampVerificationData);
    expect(() =>
      new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: 1 }).verify(
        toSignedEntity(bundleFromJSON(untimed), ARTIFACT),
      ),
    ).toThrow();
    expect(() =>
      new BundleVerifier(plane.trustedRoot).verify(untimed, {
        artifact: ARTIFACT,
        policy: { subject, issuer: plane.endpoints.identityIssuerUrl },
      }),
    ).toThrow();
  });
});
