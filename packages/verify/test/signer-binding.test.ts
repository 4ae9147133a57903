/**
 * A bundle must speak about the artifact and the key it is verified against, everywhere in it: the message digest
 * a message signature carries (and the log entry records) must be the artifact's, and the key a key-signed
 * bundle's log entry names must be the configured one. Both bundles below are made with the stock @sigstore/sign
 * builders and logged by a real trust plane; their ECDSA signatures are crafted (see helpers/crafted-ecdsa.ts) so
 * that every other check passes — stock @sigstore/verify accepts each of them.
 */
import { createHash, createPublicKey, generateKeyPairSync, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DSSEBundleBuilder,
  MessageSignatureBundleBuilder,
  RekorWitness,
  type Artifact,
  type Signature,
  type Signer,
} from '@sigstore/sign';
import {
  bundleFromJSON,
  bundleToJSON,
  toMessageSignatureBundle,
  type BundleWithMessageSignature,
  type SerializedBundle,
} from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { BundleVerifier } from '../src/index.js';
import { dualDigestSignature, dualKeySignature, verifiesOver } from './helpers/crafted-ecdsa.js';

const ARTIFACT = Buffer.from('the artifact a verifier holds\n');
const sha256 = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const spki = (k: KeyObject): string =>
  (k.type === 'private' ? createPublicKey(k) : k).export({ type: 'spki', format: 'pem' }).toString();

let plane: RunningTrustPlane;
let dir: string;
let subject: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-verify-binding-'));
  plane = await startTrustPlane({ dataDir: dir });
  subject = `spiffe://${plane.endpoints.trustDomain}/ci/binding`;
});

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A v0.3 message-signature bundle whose messageDigest is whatever `digestOf` says (the log records it). */
class DigestChoosingBuilder extends MessageSignatureBundleBuilder {
  constructor(
    signer: Signer,
    witnesses: RekorWitness[],
    private readonly digestOf: (data: Buffer) => Buffer,
  ) {
    super({ signer, witnesses });
  }
  protected override async package(artifact: Artifact, signature: Signature): Promise<BundleWithMessageSignature> {
    return toMessageSignatureBundle({
      digest: this.digestOf(artifact.data),
      signature: signature.signature,
      certificate:
        signature.key.$case === 'x509Certificate'
          ? Buffer.from(signature.key.certificate.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
          : undefined,
      keyHint: signature.key.$case === 'publicKey' ? signature.key.hint : undefined,
      certificateChain: false,
    });
  }
}

const witness = (): RekorWitness => new RekorWitness({ rekorBaseURL: plane.endpoints.tlogUrl, fetchOnConflict: true });

/** A Fulcio v2 certificate for `keys`, requested the way FulcioSigner does (proof of possession over the subject). */
async function certificateFor(keys: { privateKey: KeyObject; publicKey: KeyObject }): Promise<string> {
  const res = await fetch(`${plane.endpoints.caUrl}/api/v2/signingCert`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      credentials: { oidcIdentityToken: await plane.issueToken(subject) },
      publicKeyRequest: {
        publicKey: { algorithm: 'ECDSA', content: spki(keys.publicKey) },
        proofOfPossession: cryptoSign('sha256', Buffer.from(subject), keys.privateKey).toString('base64'),
      },
    }),
  });
  expect(res.status).toBe(201);
  const body = (await res.json()) as { signedCertificateDetachedSct: { chain: { certificates: string[] } } };
  return body.signedCertificateDetachedSct.chain.certificates[0]!;
}

/**
 * Signs the artifact for real, but with a signature that also verifies over another digest, and records that
 * other digest as the bundle's messageDigest — so the log entry names a digest that is not the artifact's.
 */
async function bundleLoggingAnotherDigest(key: Signature['key'], privateKey: KeyObject) {
  let other: Buffer | undefined;
  const signer: Signer = {
    sign: async (data) => {
      const crafted = dualDigestSignature(privateKey, sha256(data));
      expect(verifiesOver(data, privateKey, crafted.signature)).toBe(true);
      other = crafted.otherDigest;
      return { signature: crafted.signature, key };
    },
  };
  const bundle = await new DigestChoosingBuilder(signer, [witness()], () => other!).create({ data: ARTIFACT });
  return { bundle: bundleToJSON(bundle), otherDigest: other! };
}

function stockVerifier(publicKey?: KeyObject): Verifier {
  const trust = toTrustMaterial(
    TrustedRoot.fromJSON(plane.trustedRoot),
    publicKey ? () => ({ publicKey, validFor: () => true }) : undefined,
  );
  return new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: publicKey ? 0 : 1 });
}

describe('messageSignature.messageDigest must be the artifact digest', () => {
  it('refuses a key-signed bundle whose (logged) messageDigest is another digest, naming both', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { bundle, otherDigest } = await bundleLoggingAnotherDigest(
      { $case: 'publicKey', publicKey: spki(publicKey), hint: '' },
      privateKey,
    );
    const logged = JSON.parse(
      Buffer.from(bundle.verificationMaterial.tlogEntries[0]!.canonicalizedBody, 'base64').toString(),
    ) as { spec: { data: { hash: { value: string } } } };
    expect(logged.spec.data.hash.value).toBe(otherDigest.toString('hex'));
    expect(logged.spec.data.hash.value).not.toBe(sha256(ARTIFACT).toString('hex'));
    // Stock @sigstore/verify accepts it: signature over the artifact, log body = bundle digest, both hold.
    expect(() => stockVerifier(publicKey).verify(toSignedEntity(bundleFromJSON(bundle), ARTIFACT))).not.toThrow();

    const v = new BundleVerifier(plane.trustedRoot, { publicKeys: { '': spki(publicKey) } });
    const err = catchError(() => v.verify(bundle, { artifact: ARTIFACT }));
    expect(err).toMatchObject({ code: 'VERIFY_MESSAGE_DIGEST' });
    expect(err.message).toContain(`sha256:${otherDigest.toString('hex')}`);
    expect(err.message).toContain(`sha256:${sha256(ARTIFACT).toString('hex')}`);
  });

  it('refuses a certificate-signed bundle whose messageDigest is another digest', async () => {
    const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const certificate = await certificateFor(keys);
    const { bundle } = await bundleLoggingAnotherDigest({ $case: 'x509Certificate', certificate }, keys.privateKey);
    const policy = { subject, issuer: plane.endpoints.identityIssuerUrl };
    expect(() =>
      stockVerifier().verify(toSignedEntity(bundleFromJSON(bundle), ARTIFACT), {
        subjectAlternativeName: `^${subject.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`,
        extensions: { issuer: policy.issuer },
      }),
    ).not.toThrow();
    const v = new BundleVerifier(plane.trustedRoot);
    expect(() => v.verify(bundle, { artifact: ARTIFACT, policy })).toThrow(
      expect.objectContaining({ code: 'VERIFY_MESSAGE_DIGEST' }),
    );
  });

  it('refuses a messageDigest in another algorithm than the one it is computed in', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { bundle } = await bundleLoggingAnotherDigest(
      { $case: 'publicKey', publicKey: spki(publicKey), hint: '' },
      privateKey,
    );
    const relabelled = JSON.parse(JSON.stringify(bundle)) as SerializedBundle & {
      messageSignature: { messageDigest: { algorithm: string; digest: string } };
    };
    relabelled.messageSignature.messageDigest = {
      algorithm: 'SHA2_384',
      digest: sha256(ARTIFACT).toString('base64'),
    };
    const v = new BundleVerifier(plane.trustedRoot, { publicKeys: { '': spki(publicKey) } });
    const err = catchError(() => v.verify(relabelled, { artifact: ARTIFACT }));
    expect(err).toMatchObject({ code: 'VERIFY_MESSAGE_DIGEST' });
    expect(err.message).toContain('sha384:');
  });
});

describe("a key-signed bundle's log entry must name the configured key", () => {
  /** A real signature with key A that also verifies with key B; the log entry is made (and checked) with B. */
  function signerLoggingOtherKey(keyA: KeyObject): { signer: Signer; keyB: () => KeyObject } {
    let keyB: KeyObject | undefined;
    return {
      keyB: () => keyB!,
      signer: {
        sign: async (data) => {
          const crafted = dualKeySignature(keyA, sha256(data));
          expect(verifiesOver(data, keyA, crafted.signature)).toBe(true);
          expect(verifiesOver(data, crafted.otherKey, crafted.signature)).toBe(true);
          keyB = crafted.otherKey;
          return { signature: crafted.signature, key: { $case: 'publicKey', publicKey: spki(keyB), hint: '' } };
        },
      },
    };
  }

  it.each(['messageSignature', 'dsseEnvelope'] as const)(
    'refuses a %s bundle signed with key A whose log entry names key B',
    async (content) => {
      const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const { signer, keyB } = signerLoggingOtherKey(a.privateKey);
      const statement = {
        _type: 'https://in-toto.io/Statement/v1',
        subject: [{ name: 'a', digest: { sha256: sha256(ARTIFACT).toString('hex') } }],
        predicateType: 'https://airlock.dev/attestation/test/v1',
        predicate: {},
      };
      const built =
        content === 'messageSignature'
          ? await new DigestChoosingBuilder(signer, [witness()], sha256).create({ data: ARTIFACT })
          : await new DSSEBundleBuilder({ signer, witnesses: [witness()] }).create({
              data: Buffer.from(JSON.stringify(statement)),
              type: 'application/vnd.in-toto+json',
            });
      const bundle = bundleToJSON(built);
      const entity = (): ReturnType<typeof toSignedEntity> =>
        toSignedEntity(bundleFromJSON(bundle), content === 'messageSignature' ? ARTIFACT : undefined);
      // Stock @sigstore/verify does not compare the log body's key: with key A configured it accepts.
      expect(() => stockVerifier(a.publicKey).verify(entity())).not.toThrow();

      const withA = new BundleVerifier(plane.trustedRoot, { publicKeys: { '': spki(a.publicKey) } });
      const err = catchError(() => withA.verify(bundle, { artifact: ARTIFACT }));
      expect(err).toMatchObject({ code: 'VERIFY_TLOG_BODY' });
      expect(err.message).toMatch(/key/);
      // With key B (the key the log names, and the signature verifies with) the bundle is consistent and verifies.
      const withB = new BundleVerifier(plane.trustedRoot, { publicKeys: { '': spki(keyB()) } });
      expect(withB.verify(bundle, { artifact: ARTIFACT }).content).toBe(content);
    },
  );
});

function catchError(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected an error, the bundle was accepted');
}
