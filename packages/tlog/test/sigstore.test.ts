import { createPublicKey, sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFromJSON, bundleToJSON } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { DSSEBundleBuilder, MessageSignatureBundleBuilder, RekorWitness, type Signer } from '@sigstore/sign';
import { toSignedEntity, toTrustMaterial, Verifier } from '@sigstore/verify';
import { verifyLogEntry } from '../src/entry.js';
import { startTlogServer, type RunningTlog } from '../src/http/server.js';
import { makeKeySigner, statement, tempDir } from './helpers.js';

// Real sigstore-js clients, unchanged, against this log: RekorWitness (sign@4) logs, Verifier (verify@3) checks
// the SET, the checkpoint signature (key name vs baseUrl, key hint vs log ID) and the inclusion proof. A key
// bundle (publicKey hint) needs no CA.

let server: RunningTlog;
let dir: ReturnType<typeof tempDir>;
const key = makeKeySigner();
const HINT = 'airlock-test-key';

const signer: Signer = {
  sign: async (data: Buffer) => ({
    signature: sign('sha256', data, key.privateKey),
    key: { $case: 'publicKey', publicKey: key.publicKeyPem, hint: HINT },
  }),
};

beforeAll(async () => {
  dir = tempDir();
  server = await startTlogServer({ dataDir: dir.path });
});
afterAll(async () => {
  await server?.close();
  dir?.remove();
});

function trustedRoot(baseUrl: string) {
  return TrustedRoot.fromJSON({
    mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1',
    tlogs: [
      {
        baseUrl,
        hashAlgorithm: 'SHA2_256',
        publicKey: {
          rawBytes: server.publicKeyDer.toString('base64'),
          keyDetails: 'PKIX_ECDSA_P256_SHA_256',
          validFor: { start: '2000-01-01T00:00:00Z' },
        },
        logId: { keyId: Buffer.from(server.logId, 'hex').toString('base64') },
      },
    ],
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  });
}

function verifier(baseUrl = server.url): Verifier {
  const trust = toTrustMaterial(trustedRoot(baseUrl), (hint: string) => {
    if (hint !== HINT) throw new Error(`unknown key ${hint}`);
    return { publicKey: createPublicKey(key.publicKeyPem), validFor: () => true };
  });
  return new Verifier(trust, { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 1 });
}

describe('sigstore-js against this log', () => {
  it('RekorWitness (dsse) logs a DSSE bundle that @sigstore/verify accepts', async () => {
    const builder = new DSSEBundleBuilder({
      signer,
      witnesses: [new RekorWitness({ rekorBaseURL: server.url, entryType: 'dsse', fetchOnConflict: true })],
    });
    const payload = Buffer.from(statement('pkg.tgz', 'package bytes'));
    const bundle = await builder.create({ data: payload, type: 'application/vnd.in-toto+json' });
    const json = bundleToJSON(bundle);
    const tlog = json.verificationMaterial.tlogEntries[0]!;
    expect(tlog.kindVersion).toEqual({ kind: 'dsse', version: '0.0.1' });
    expect(tlog.inclusionProof?.checkpoint?.envelope).toContain(`\u2014 ${server.logName} `);
    const entity = toSignedEntity(bundleFromJSON(json));
    const result = verifier().verify(entity);
    expect(result.key).toBeDefined();
  });

  it('RekorWitness logs a message signature as hashedrekord that @sigstore/verify accepts', async () => {
    const builder = new MessageSignatureBundleBuilder({
      signer,
      witnesses: [new RekorWitness({ rekorBaseURL: server.url })],
    });
    const artifact = Buffer.from('a release artifact');
    const bundle = await builder.create({ data: artifact });
    const json = bundleToJSON(bundle);
    expect(json.verificationMaterial.tlogEntries[0]!.kindVersion).toEqual({ kind: 'hashedrekord', version: '0.0.1' });
    verifier().verify(toSignedEntity(bundleFromJSON(json), artifact));
    // And the bundle does not verify for another artifact (the tlog body binds the digest).
    expect(() => verifier().verify(toSignedEntity(bundleFromJSON(json), Buffer.from('other')))).toThrow();
  });

  it('fetchOnConflict: logging the same DSSE envelope twice returns the existing entry', async () => {
    const witness = new RekorWitness({ rekorBaseURL: server.url, entryType: 'dsse', fetchOnConflict: true });
    const builder = new DSSEBundleBuilder({ signer, witnesses: [witness] });
    const first = await builder.create({ data: Buffer.from('same'), type: 'text/plain' });
    const envelope = first.content.$case === 'dsseEnvelope' ? first.content.dsseEnvelope : undefined;
    expect(envelope).toBeDefined();
    const again = await witness.testify({ $case: 'dsseEnvelope', dsseEnvelope: envelope! }, key.publicKeyPem);
    expect(again.tlogEntries[0]!.logIndex).toBe(first.verificationMaterial.tlogEntries[0]!.logIndex);
  });

  it('fails verification when the trusted root baseUrl does not contain the checkpoint key name', async () => {
    const builder = new DSSEBundleBuilder({ signer, witnesses: [new RekorWitness({ rekorBaseURL: server.url })] });
    const bundle = await builder.create({
      data: Buffer.from(statement('x', 'y')),
      type: 'application/vnd.in-toto+json',
    });
    expect(() => verifier('https://rekor.elsewhere.example').verify(toSignedEntity(bundle))).toThrow(/checkpoint/);
  });

  it("the same entries pass this package's own verifier", async () => {
    const entry = (await server.log.getByIndex(0))!;
    expect(
      verifyLogEntry(entry, { publicKey: server.publicKeyPem, expectedKeyName: server.logName }).checkpoint?.size,
    ).toBe(server.log.size);
  });
});
