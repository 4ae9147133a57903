import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INTOTO_PAYLOAD_TYPE, signDsse, verifyDsse, type DsseEnvelope } from '@airlock/core';
import {
  addToFallbackIndex,
  attachCosignAttestation,
  attachCosignSignature,
  attachSigstoreBundle,
  buildImageLayout,
  cosignAttestationTag,
  cosignSignatureTag,
  EMPTY_JSON_DIGEST,
  MEDIA_TYPES,
  readCosignAttestations,
  readCosignSignatures,
  readSigstoreBundles,
  referrersFallbackTag,
  RegistryClient,
  simpleSigningPayload,
  type BuiltImage,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from '../src/index.js';
import { registryProblem, skopeoProblem, startRegistry, toolsAvailable, type RunningRegistry } from '@airlock/testkit';
import { removeDir, run, sha256, startCorruptingProxy, tempDir, type CorruptingProxy } from './helpers.js';

const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const otherKey = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBdummyleafcertificateforlayoutonly\n-----END CERTIFICATE-----\n';
const REKOR_BUNDLE = {
  SignedEntryTimestamp: 'MEUCIQ==',
  Payload: { body: 'e30=', integratedTime: 1700000000, logIndex: 7, logID: 'c0ffee' },
};
const SLSA = 'https://slsa.dev/provenance/v1';

function statement(digest: string, predicateType = SLSA): Buffer {
  return Buffer.from(
    JSON.stringify({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'app', digest: { sha256: digest.slice(7) } }],
      predicateType,
      predicate: {},
    }),
  );
}

/** A v0.3 bundle around a real DSSE envelope (public-key material: nothing here verifies Sigstore trust). */
function dsseBundle(digest: string, predicateType = SLSA): Record<string, unknown> {
  return {
    mediaType: MEDIA_TYPES.sigstoreBundleV03,
    verificationMaterial: { publicKey: { hint: 'airlock-test' }, tlogEntries: [] },
    dsseEnvelope: signDsse(INTOTO_PAYLOAD_TYPE, statement(digest, predicateType), privateKey),
  };
}

function messageBundle(digest: string): Record<string, unknown> {
  const sig = sign('sha256', Buffer.from(digest), privateKey).toString('base64');
  return {
    mediaType: MEDIA_TYPES.sigstoreBundleV03,
    verificationMaterial: { publicKey: { hint: 'airlock-test' }, tlogEntries: [] },
    messageSignature: {
      messageDigest: { algorithm: 'SHA2_256', digest: Buffer.from(digest.slice(7), 'hex').toString('base64') },
      signature: sig,
    },
  };
}

const available = toolsAvailable('OCI signature tests', [registryProblem(), skopeoProblem()]);

describe.skipIf(!available)(
  'cosign signatures, attestations and Sigstore bundle referrers on docker-registry 2.8.2',
  () => {
    let dir: string;
    let registry: RunningRegistry;
    let client: RegistryClient;
    let image: BuiltImage;
    let other: BuiltImage;
    let blobProxy: CorruptingProxy;

    /** Pushes the test image into its own repository, so every test starts with no signatures. */
    async function fresh(
      repo: string,
      img: BuiltImage = image,
    ): Promise<{ repo: string; digest: string; descriptor: Descriptor }> {
      const pushed = await client.pushLayout(img.layoutDir, `${repo}:v1`);
      return { repo, digest: pushed.digest, descriptor: img.manifest };
    }

    beforeAll(async () => {
      dir = tempDir();
      registry = await startRegistry(join(dir, 'reg'));
      client = new RegistryClient({ url: registry.url });
      image = await buildImageLayout(
        {
          files: [{ path: 'app/app', bytes: 'signed image\n', mode: 0o755 }],
          entrypoint: ['/app/app'],
          architecture: 'amd64',
        },
        join(dir, 'img'),
      );
      other = await buildImageLayout(
        {
          files: [{ path: 'app/app', bytes: 'another image\n', mode: 0o755 }],
          entrypoint: ['/app/app'],
          architecture: 'amd64',
        },
        join(dir, 'other'),
      );
      blobProxy = await startCorruptingProxy(
        registry.port,
        (method, path) => method === 'GET' && path.includes('/blobs/'),
      );
    });
    afterAll(async () => {
      await blobProxy?.close();
      await registry?.stop();
      removeDir(dir);
    });

    it('builds the simple-signing payload in cosign field order', () => {
      const payload = simpleSigningPayload({
        dockerReference: '127.0.0.1:5000/app',
        manifestDigest: image.manifestDigest,
      });
      expect(payload.toString()).toBe(
        `{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/app"},"image":{"docker-manifest-digest":"${image.manifestDigest}"},"type":"cosign container image signature"},"optional":{}}`,
      );
      expect(() => simpleSigningPayload({ dockerReference: 'x', manifestDigest: 'sha256:abc' })).toThrow(
        expect.objectContaining({ code: 'OCI_INPUT_INVALID' }),
      );
    });

    it('attaches a cosign signature under sha256-<hex>.sig and reads it back byte-exact; the signature verifies', async () => {
      const { repo, digest } = await fresh('sig/one');
      const payload = simpleSigningPayload({ dockerReference: `${registry.host}/${repo}`, manifestDigest: digest });
      const signature = sign('sha256', payload, privateKey).toString('base64');
      const attached = await attachCosignSignature(client, repo, digest, {
        payload,
        signature,
        certificate: CERT,
        bundle: REKOR_BUNDLE,
      });
      expect(attached.tag).toBe(`sha256-${digest.slice(7)}.sig`);
      expect([attached.layers, attached.added, attached.layerDigest]).toEqual([1, true, sha256(payload)]);
      expect((await client.listTags(repo)).sort()).toEqual([cosignSignatureTag(digest), 'v1'].sort());

      // What is on the registry, as skopeo sees it: one simple-signing layer with cosign's annotations.
      const raw = await run('skopeo', [
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${registry.host}/${repo}:${cosignSignatureTag(digest)}`,
      ]);
      expect(raw.status, raw.stderr).toBe(0);
      expect(sha256(raw.stdout)).toBe(attached.manifestDigest);
      const manifest = JSON.parse(raw.stdout.toString()) as ImageManifest;
      expect(manifest.mediaType).toBe(MEDIA_TYPES.ociManifest);
      expect(manifest.config.mediaType).toBe(MEDIA_TYPES.ociConfig);
      expect(manifest.layers).toEqual([
        {
          mediaType: MEDIA_TYPES.cosignSimpleSigning,
          digest: sha256(payload),
          size: payload.length,
          annotations: {
            'dev.cosignproject.cosign/signature': signature,
            'dev.sigstore.cosign/certificate': CERT,
            'dev.sigstore.cosign/bundle': JSON.stringify(REKOR_BUNDLE),
          },
        },
      ]);

      const sigs = await readCosignSignatures(client, repo, digest);
      expect(sigs).toHaveLength(1);
      const s = sigs[0]!;
      expect(s.payload.equals(payload)).toBe(true);
      expect([s.signature, s.certificate, s.bundle, s.manifestDigest, s.payloadMatchesImage]).toEqual([
        signature,
        CERT,
        JSON.stringify(REKOR_BUNDLE),
        attached.manifestDigest,
        true,
      ]);
      expect(s.simpleSigning?.manifestDigest).toBe(digest);
      expect(verify('sha256', s.payload, publicKey, Buffer.from(s.signature, 'base64'))).toBe(true);
      // An image without signatures reads as none, not as an error.
      expect(await readCosignSignatures(client, repo, `sha256:${'2'.repeat(64)}`)).toEqual([]);
    });

    it('appends a second signer, keeps the first, and does not duplicate a re-attached signature', async () => {
      const { repo, digest } = await fresh('sig/two');
      const payload = simpleSigningPayload({ dockerReference: `${registry.host}/${repo}`, manifestDigest: digest });
      const first = { payload, signature: sign('sha256', payload, privateKey).toString('base64') };
      const second = { payload, signature: sign('sha256', payload, otherKey).toString('base64') };
      await attachCosignSignature(client, repo, digest, first);
      const two = await attachCosignSignature(client, repo, digest, second);
      expect([two.layers, two.added]).toEqual([2, true]);
      const again = await attachCosignSignature(client, repo, digest, first);
      expect([again.layers, again.added, again.manifestDigest]).toEqual([2, false, two.manifestDigest]);
      const sigs = await readCosignSignatures(client, repo, digest);
      expect(sigs.map((s) => s.signature)).toEqual([first.signature, second.signature]);
      expect(sigs.map((s) => verify('sha256', s.payload, publicKey, Buffer.from(s.signature, 'base64')))).toEqual([
        true,
        false,
      ]);
    });

    it('marks a signature whose payload names another image (payloadMatchesImage false)', async () => {
      const { repo, digest } = await fresh('sig/mismatch');
      const payload = simpleSigningPayload({
        dockerReference: `${registry.host}/${repo}`,
        manifestDigest: other.manifestDigest,
      });
      await attachCosignSignature(client, repo, digest, {
        payload,
        signature: sign('sha256', payload, privateKey).toString('base64'),
      });
      const [s] = await readCosignSignatures(client, repo, digest);
      expect([s!.payloadMatchesImage, s!.simpleSigning?.manifestDigest]).toEqual([false, other.manifestDigest]);
    });

    it('attaches a DSSE attestation under sha256-<hex>.att and reads the envelope back byte-exact; it verifies', async () => {
      const { repo, digest } = await fresh('att/one');
      const envelope = signDsse(INTOTO_PAYLOAD_TYPE, statement(digest), privateKey);
      const attached = await attachCosignAttestation(client, repo, digest, {
        envelope,
        predicateType: SLSA,
        certificate: CERT,
        bundle: REKOR_BUNDLE,
      });
      expect(attached.tag).toBe(cosignAttestationTag(digest));
      expect((await client.listTags(repo)).sort()).toEqual([cosignAttestationTag(digest), 'v1'].sort());
      const manifest = JSON.parse((await client.getManifest(repo, attached.tag)).bytes.toString()) as ImageManifest;
      expect(manifest.layers[0]).toMatchObject({
        mediaType: MEDIA_TYPES.dsseEnvelope,
        annotations: {
          'dev.cosignproject.cosign/signature': '',
          predicateType: SLSA,
          'dev.sigstore.cosign/certificate': CERT,
        },
      });
      const atts = await readCosignAttestations(client, repo, digest);
      expect(atts).toHaveLength(1);
      expect(atts[0]!.envelopeBytes.toString()).toBe(JSON.stringify(envelope));
      expect(atts[0]!.predicateType).toBe(SLSA);
      const body = JSON.parse(
        verifyDsse(atts[0]!.envelope as DsseEnvelope, publicKey, INTOTO_PAYLOAD_TYPE).toString(),
      ) as { subject: { digest: { sha256: string } }[] };
      expect(`sha256:${body.subject[0]!.digest.sha256}`).toBe(digest);

      await expect(
        attachCosignAttestation(client, repo, digest, { envelope: Buffer.from('{"not":"dsse"}'), predicateType: SLSA }),
      ).rejects.toMatchObject({ code: 'OCI_INPUT_INVALID' });
      await expect(
        attachCosignAttestation(client, repo, digest, { envelope, predicateType: '' }),
      ).rejects.toMatchObject({ code: 'OCI_INPUT_INVALID' });
    });

    it('attaches Sigstore bundles as OCI 1.1 referrers and maintains the sha256-<hex> fallback index', async () => {
      const { repo, digest, descriptor } = await fresh('bundles/one');
      // Distribution 2.8.2 has no referrers API: the route itself is a 404.
      const api = await fetch(`${registry.url}/v2/${repo}/referrers/${digest}`);
      expect(api.status).toBe(404);

      const b1 = dsseBundle(digest);
      const first = await attachSigstoreBundle(client, repo, { subject: digest, bundle: b1 });
      expect([first.fallbackTag, first.fallbackUpdated]).toEqual([referrersFallbackTag(digest), true]);
      const fetched = await client.getManifest(repo, first.manifestDigest);
      const m = JSON.parse(fetched.bytes.toString()) as ImageManifest;
      expect(m).toEqual({
        schemaVersion: 2,
        mediaType: MEDIA_TYPES.ociManifest,
        artifactType: MEDIA_TYPES.sigstoreBundleV03,
        config: { mediaType: MEDIA_TYPES.ociEmpty, digest: EMPTY_JSON_DIGEST, size: 2 },
        layers: [
          {
            mediaType: MEDIA_TYPES.sigstoreBundleV03,
            digest: sha256(JSON.stringify(b1)),
            size: Buffer.byteLength(JSON.stringify(b1)),
          },
        ],
        subject: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size },
        annotations: { 'dev.sigstore.bundle.content': 'dsse-envelope', 'dev.sigstore.bundle.predicateType': SLSA },
      });
      // Pushed by digest: no tag besides the image's and the fallback index.
      expect((await client.listTags(repo)).sort()).toEqual([referrersFallbackTag(digest), 'v1'].sort());

      const second = await attachSigstoreBundle(client, repo, {
        subject: descriptor,
        bundle: messageBundle(digest),
        created: '2024-01-01T00:00:00Z',
      });
      expect(second.fallbackUpdated).toBe(true);
      const index = JSON.parse(
        (await client.getManifest(repo, referrersFallbackTag(digest))).bytes.toString(),
      ) as ImageIndex;
      expect(index.mediaType).toBe(MEDIA_TYPES.ociIndex);
      expect(index.manifests).toEqual([first.descriptor, second.descriptor]);
      expect(index.manifests.map((d) => [d.artifactType, d.annotations?.['dev.sigstore.bundle.content']])).toEqual([
        [MEDIA_TYPES.sigstoreBundleV03, 'dsse-envelope'],
        [MEDIA_TYPES.sigstoreBundleV03, 'message-signature'],
      ]);
      expect(second.descriptor.annotations?.['org.opencontainers.image.created']).toBe('2024-01-01T00:00:00Z');

      // Re-attaching the first bundle is idempotent: same manifest digest, no duplicate entry.
      const again = await attachSigstoreBundle(client, repo, { subject: digest, bundle: b1 });
      expect([again.manifestDigest, again.fallbackUpdated]).toEqual([first.manifestDigest, false]);
      const referrers = await client.listReferrers(repo, digest);
      expect(referrers.source).toBe('fallback');
      expect(referrers.descriptors.map((d) => d.digest)).toEqual([first.manifestDigest, second.manifestDigest]);
      expect((await client.listReferrers(repo, digest, { artifactType: 'application/x-other' })).descriptors).toEqual(
        [],
      );

      const bundles = await readSigstoreBundles(client, repo, digest);
      expect(bundles.map((b) => [b.manifestDigest, b.predicateType, b.source])).toEqual([
        [first.manifestDigest, SLSA, 'fallback'],
        [second.manifestDigest, undefined, 'fallback'],
      ]);
      expect(bundles[0]!.bytes.toString()).toBe(JSON.stringify(b1));
      const env = (bundles[0]!.bundle as { dsseEnvelope: DsseEnvelope }).dsseEnvelope;
      expect(() => verifyDsse(env, publicKey, INTOTO_PAYLOAD_TYPE)).not.toThrow();

      // skopeo fetches the referrer by digest and gets exactly our bytes.
      const raw = await run('skopeo', [
        'inspect',
        '--raw',
        '--tls-verify=false',
        `docker://${registry.host}/${repo}@${first.manifestDigest}`,
      ]);
      expect(raw.status, raw.stderr).toBe(0);
      expect(sha256(raw.stdout)).toBe(first.manifestDigest);
    });

    it('ignores a fallback-index entry whose manifest names another image as subject', async () => {
      const { repo, digest } = await fresh('bundles/subject');
      const otherPushed = await fresh('bundles/subject', other);
      await attachSigstoreBundle(client, repo, { subject: digest, bundle: dsseBundle(digest) });
      const foreign = await attachSigstoreBundle(client, repo, {
        subject: otherPushed.digest,
        bundle: dsseBundle(otherPushed.digest),
      });
      // Someone lists the other image's referrer under this image's fallback tag.
      await addToFallbackIndex(client, repo, digest, foreign.descriptor);
      expect((await client.listReferrers(repo, digest)).descriptors).toHaveLength(2);
      const bundles = await readSigstoreBundles(client, repo, digest);
      expect(bundles).toHaveLength(1);
      expect(bundles[0]!.manifestDigest).not.toBe(foreign.manifestDigest);
    });

    it('refuses to overwrite a fallback tag that is not an index, and bundles that are not Sigstore bundles', async () => {
      const { repo, digest } = await fresh('bundles/conflict');
      // Squat the fallback tag with an ordinary image manifest.
      await client.pushLayout(other.layoutDir, `${repo}:${referrersFallbackTag(digest)}`);
      await expect(
        attachSigstoreBundle(client, repo, { subject: digest, bundle: dsseBundle(digest) }),
      ).rejects.toMatchObject({ code: 'OCI_REFERRERS_CONFLICT' });
      await expect(
        attachSigstoreBundle(client, repo, {
          subject: digest,
          bundle: { mediaType: 'application/json', dsseEnvelope: {} },
        }),
      ).rejects.toMatchObject({ code: 'OCI_INPUT_INVALID' });
      await expect(
        attachSigstoreBundle(client, repo, { subject: digest, bundle: Buffer.from('not json') }),
      ).rejects.toMatchObject({ code: 'OCI_INPUT_INVALID' });
    });

    it('readers refuse blobs whose bytes do not match their digest (tampering proxy)', async () => {
      const { repo, digest } = await fresh('tamper/all');
      const payload = simpleSigningPayload({ dockerReference: `${registry.host}/${repo}`, manifestDigest: digest });
      await attachCosignSignature(client, repo, digest, {
        payload,
        signature: sign('sha256', payload, privateKey).toString('base64'),
      });
      await attachCosignAttestation(client, repo, digest, {
        envelope: signDsse(INTOTO_PAYLOAD_TYPE, statement(digest), privateKey),
        predicateType: SLSA,
      });
      await attachSigstoreBundle(client, repo, { subject: digest, bundle: dsseBundle(digest) });
      const tampered = new RegistryClient({ url: blobProxy.url });
      await expect(readCosignSignatures(tampered, repo, digest)).rejects.toMatchObject({ code: 'OCI_DIGEST_MISMATCH' });
      await expect(readCosignAttestations(tampered, repo, digest)).rejects.toMatchObject({
        code: 'OCI_DIGEST_MISMATCH',
      });
      await expect(readSigstoreBundles(tampered, repo, digest)).rejects.toMatchObject({ code: 'OCI_DIGEST_MISMATCH' });
      expect(blobProxy.corrupted).toHaveLength(3);
      // Untampered, all three read fine.
      expect(
        (await readCosignSignatures(client, repo, digest)).length +
          (await readCosignAttestations(client, repo, digest)).length +
          (await readSigstoreBundles(client, repo, digest)).length,
      ).toBe(3);
    });

    it('held bytes stand in for a layer only when their sha256 and size are its own (tampering proxy)', async () => {
      const { repo, digest } = await fresh('tamper/held');
      const envelope = Buffer.from(JSON.stringify(signDsse(INTOTO_PAYLOAD_TYPE, statement(digest), privateKey)));
      await attachCosignAttestation(client, repo, digest, { envelope, predicateType: SLSA });
      const payload = simpleSigningPayload({ dockerReference: `${registry.host}/${repo}`, manifestDigest: digest });
      await attachCosignSignature(client, repo, digest, {
        payload,
        signature: sign('sha256', payload, privateKey).toString('base64'),
      });
      const tampered = new RegistryClient({ url: blobProxy.url });
      const before = blobProxy.corrupted.length;
      // The exact bytes: not fetched (every blob through this proxy would come back corrupted).
      const atts = await readCosignAttestations(tampered, repo, digest, {
        held: async () => [Buffer.from('x'), envelope],
      });
      expect(atts.map((a) => a.envelopeBytes.toString())).toEqual([envelope.toString()]);
      const sigs = await readCosignSignatures(tampered, repo, digest, { held: async () => [payload] });
      expect(sigs[0]!.payload.equals(payload)).toBe(true);
      expect(sigs[0]!.payloadMatchesImage).toBe(true);
      expect(blobProxy.corrupted.length).toBe(before);
      // Other bytes, or none because the caller's promise failed: fetched and digest-checked as always.
      const other = Buffer.from(JSON.stringify(signDsse(INTOTO_PAYLOAD_TYPE, statement(digest), otherKey)));
      await expect(readCosignAttestations(tampered, repo, digest, { held: async () => [other] })).rejects.toMatchObject(
        { code: 'OCI_DIGEST_MISMATCH' },
      );
      const failing = { held: () => Promise.reject(new Error('the bundles could not be read')) };
      await expect(readCosignSignatures(tampered, repo, digest, failing)).rejects.toMatchObject({
        code: 'OCI_DIGEST_MISMATCH',
      });
      expect(blobProxy.corrupted.length).toBe(before + 2);
    });
  },
);
