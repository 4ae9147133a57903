/**
 * airlock's product verification path (BundleVerifier) against stock @sigstore/verify, configured alike
 * (trusted root of a real plane, no CT log, one log entry, the log's SET as the time source; for key-signed bundles
 * the same out-of-band key and no timestamp): the same verdict on every bundle this test signs — certificate and
 * key, message signature and DSSE — and on sampled single-bit flips in every signed or signing field of each.
 *
 * airlock is deliberately stricter in exactly these checks, each of which stock @sigstore/verify@3 leaves out;
 * where the verdicts differ the difference must be one of them, with its code:
 *  - VERIFY_TLOG_PROOF: an inclusion proof's own rootHash / treeSize must equal its signed checkpoint's (stock
 *    takes them from the checkpoint and ignores the proof's copies);
 *  - VERIFY_CERTIFICATE: the leaf certificate must be DER that OpenSSL parses (node:crypto reads it for the
 *    code-signing usage); stock's ASN.1 reader does not look at the outer tag byte, so 0x30 (SEQUENCE) changed
 *    to 0x31 still verifies there — the CA's signature covers only the TBSCertificate inside;
 *  - VERIFY_SUBJECT_MISMATCH: a DSSE in-toto statement must name the artifact's digest (stock does not read the
 *    payload);
 *  - VERIFY_PAYLOAD_TYPE: the DSSE payloadType must be the expected one (in-toto by default);
 *  - VERIFY_MESSAGE_DIGEST: a message signature's messageDigest must be the artifact's digest, and
 *    VERIFY_TLOG_BODY: a log entry's body must name the bundle's certificate or the configured key — bundles that
 *    only these catch cannot be made by flipping bits; packages/verify/test/signer-binding.test.ts builds them
 *    (with crafted ECDSA signatures) and shows stock @sigstore/verify accepting each;
 *  - VERIFY_KEY_USAGE (code-signing usage on the leaf), parseBundleStrict's canonical-JSON rule and the trusted
 *    root's validFor.start: not reachable with the plane's own certificates and roots used here.
 */
import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFromJSON, type SerializedBundle } from '@sigstore/bundle';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';
import { startTrustPlane, type RunningTrustPlane } from '@airlock/plane';
import { AirlockSigner, KeySigner } from '@airlock/sign';
import { BundleVerifier, type IdentityPolicy } from '@airlock/verify';

const ARTIFACT = Buffer.from('differential testing of two verifiers\n');
const OTHER = Buffer.from('another artifact\n');
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

type Mode = 'certificate' | 'key';
interface Case {
  name: string;
  mode: Mode;
  bundle: SerializedBundle;
}

let plane: RunningTrustPlane;
let dir: string;
let policy: IdentityPolicy;
let publicKeyPem: string;
let cases: Case[];
let textPlain: Case;

const statement = (artifact: Buffer): Parameters<AirlockSigner['attest']>[0] => ({
  _type: 'https://in-toto.io/Statement/v1',
  subject: [{ name: 'a', digest: { sha256: sha256(artifact) } }],
  predicateType: 'https://airlock.dev/attestation/test/v1',
  predicate: {},
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'airlock-diff-'));
  plane = await startTrustPlane({ dataDir: dir });
  const subject = `spiffe://${plane.endpoints.trustDomain}/diff`;
  policy = { subject, issuer: plane.endpoints.identityIssuerUrl };
  const endpoints = { fulcioUrl: plane.endpoints.caUrl, rekorUrl: plane.endpoints.tlogUrl };
  const withCert = new AirlockSigner({ ...endpoints, identity: () => plane.issueToken(subject) });
  const key = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const keySigner = new KeySigner(key.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  publicKeyPem = keySigner.publicKeyPem;
  const withKey = new AirlockSigner({ ...endpoints, keySigner });
  // A few entries first so inclusion proofs have hashes.
  for (let i = 0; i < 3; i++) await withCert.signBlob(Buffer.from(`warm-up ${i}`));
  cases = [
    { name: 'certificate blob', mode: 'certificate', bundle: await withCert.signBlob(ARTIFACT) },
    { name: 'certificate dsse', mode: 'certificate', bundle: await withCert.attest(statement(ARTIFACT)) },
    { name: 'key blob', mode: 'key', bundle: await withKey.signBlob(ARTIFACT) },
    { name: 'key dsse', mode: 'key', bundle: await withKey.attest(statement(ARTIFACT)) },
  ];
  textPlain = {
    name: 'certificate text/plain',
    mode: 'certificate',
    bundle: await withCert.signEnvelope(Buffer.from('hello'), 'text/plain'),
  };
});

afterAll(async () => {
  await plane?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

type Path = Array<string | number>;
/** Every base64 leaf of the bundle that carries signed or signing material. */
function base64Leaves(b: unknown, path: Path = []): Path[] {
  if (typeof b === 'string') {
    const key = path[path.length - 1];
    return [
      'rawBytes',
      'signature',
      'sig',
      'signedEntryTimestamp',
      'rootHash',
      'payload',
      'canonicalizedBody',
      'digest',
      'keyId',
    ].includes(String(key)) ||
      (path.includes('hashes') && typeof key === 'number')
      ? [path]
      : [];
  }
  if (Array.isArray(b)) return b.flatMap((v, i) => base64Leaves(v, [...path, i]));
  if (b && typeof b === 'object') return Object.entries(b).flatMap(([k, v]) => base64Leaves(v, [...path, k]));
  return [];
}

function get(o: unknown, p: Path): unknown {
  return p.reduce<unknown>((acc, k) => (acc as Record<string | number, unknown>)[k], o);
}
function set(o: unknown, p: Path, v: unknown): void {
  const parent = get(o, p.slice(0, -1)) as Record<string | number, unknown>;
  parent[p[p.length - 1]!] = v;
}

const anchoredLiteral = (s: string): string => `^${s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;

/** Stock @sigstore/verify, set up as BundleVerifier sets it up; 'ok' or 'refused: <why>'. */
function stockOutcome(c: Case, b: unknown, artifact: Buffer): string {
  try {
    const root = TrustedRoot.fromJSON(plane.trustedRoot);
    const isKey = c.mode === 'key';
    const publicKey = createPublicKey(publicKeyPem);
    const trust = toTrustMaterial(root, isKey ? () => ({ publicKey, validFor: () => true }) : undefined);
    const v = new Verifier(trust, { ctlogThreshold: 0, tlogThreshold: 1, timestampThreshold: isKey ? 0 : 1 });
    const bundle = bundleFromJSON(b);
    const entity = toSignedEntity(bundle, bundle.content.$case === 'messageSignature' ? artifact : undefined);
    if (isKey) v.verify(entity);
    else
      v.verify(entity, {
        subjectAlternativeName: anchoredLiteral(policy.subject!),
        extensions: { issuer: policy.issuer! },
      });
    return 'ok';
  } catch (e) {
    return `refused: ${(e as { code?: string }).code ?? (e as Error).message}`;
  }
}

/** airlock's product path; 'ok' or 'refused: <code>'. */
function airlockOutcome(c: Case, b: unknown, artifact: Buffer): string {
  const v = new BundleVerifier(plane.trustedRoot, c.mode === 'key' ? { publicKeys: { '': publicKeyPem } } : {});
  try {
    v.verify(b, { artifact, ...(c.mode === 'certificate' ? { policy } : {}) });
    return 'ok';
  } catch (e) {
    return `refused: ${(e as { code?: string }).code ?? `uncoded ${(e as Error).message}`}`;
  }
}

/** Where airlock is deliberately stricter (see the header): the field a flip was in → airlock's code. */
function documentedStricter(path: Path, pos: number): string | undefined {
  const p = path.join('.');
  if (/inclusionProof\.rootHash$/.test(p)) return 'refused: VERIFY_TLOG_PROOF';
  if (p === 'verificationMaterial.certificate.rawBytes' && pos === 0) return 'refused: VERIFY_CERTIFICATE';
  return undefined;
}

describe('BundleVerifier vs stock @sigstore/verify', () => {
  it('both accept every bundle the test signs', () => {
    for (const c of cases) {
      expect({ name: c.name, stock: stockOutcome(c, c.bundle, ARTIFACT) }).toEqual({ name: c.name, stock: 'ok' });
      expect({ name: c.name, airlock: airlockOutcome(c, c.bundle, ARTIFACT) }).toEqual({ name: c.name, airlock: 'ok' });
    }
  });

  it('the same verdict on sampled single-bit flips in every signed field, and never accept one', () => {
    let compared = 0;
    const stricter: string[] = [];
    const accepted: string[] = [];
    const disagreements: Array<{ where: string; stock: string; airlock: string }> = [];
    for (const c of cases) {
      for (const path of base64Leaves(c.bundle)) {
        const bytes = Buffer.from(get(c.bundle, path) as string, 'base64');
        // Sample ~12 positions per field, spread over its length, deterministic.
        const positions = new Set<number>();
        for (let k = 0; k < 12 && bytes.length > 0; k++) positions.add(Math.floor((k * bytes.length) / 12));
        for (const pos of positions) {
          const mutated = JSON.parse(JSON.stringify(c.bundle)) as SerializedBundle;
          const flipped = Buffer.from(bytes);
          flipped[pos] = flipped[pos]! ^ (1 << (pos % 8));
          set(mutated, path, flipped.toString('base64'));
          const stock = stockOutcome(c, mutated, ARTIFACT);
          const airlock = airlockOutcome(c, mutated, ARTIFACT);
          const where = `${c.name}:${path.join('.')}@${pos}`;
          compared++;
          if (airlock === 'ok') accepted.push(where);
          if (stock === 'ok' && airlock !== 'ok') {
            if (airlock === documentedStricter(path, pos)) stricter.push(where);
            else disagreements.push({ where, stock, airlock });
          } else if ((stock === 'ok') !== (airlock === 'ok')) disagreements.push({ where, stock, airlock });
        }
      }
    }
    expect(disagreements).toEqual([]);
    expect(accepted).toEqual([]);
    expect(compared).toBeGreaterThan(200);
    // Every sampled flip of the proof's own root hash (which stock ignores) is one of the stricter refusals.
    expect(stricter.length).toBeGreaterThan(0);
  });

  it('DSSE: stock accepts another artifact, another payloadType; airlock refuses each with its code', () => {
    for (const c of cases.filter((x) => x.name.endsWith('dsse'))) {
      expect(stockOutcome(c, c.bundle, OTHER)).toBe('ok');
      expect(airlockOutcome(c, c.bundle, OTHER)).toBe('refused: VERIFY_SUBJECT_MISMATCH');
    }
    expect(stockOutcome(textPlain, textPlain.bundle, ARTIFACT)).toBe('ok');
    expect(airlockOutcome(textPlain, textPlain.bundle, ARTIFACT)).toBe('refused: VERIFY_PAYLOAD_TYPE');
  });

  it('a message signature over another artifact: both refuse', () => {
    for (const c of cases.filter((x) => x.name.endsWith('blob'))) {
      expect(stockOutcome(c, c.bundle, OTHER)).toMatch(/^refused/);
      expect(airlockOutcome(c, c.bundle, OTHER)).toBe('refused: VERIFY_MESSAGE_DIGEST');
    }
  });
});
