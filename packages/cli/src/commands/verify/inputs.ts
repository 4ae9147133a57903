import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { canonicalBytes, sha256Hex } from '@airlock/core';
import { MIRROR_STORE_LAYOUT, MirrorIndex } from '@airlock/cas';
import {
  combineSnapshotSources,
  implicitPolicy,
  indexAdvisories,
  loadOsvDirectory,
  loadPolicyFile,
  MirrorLookupSnapshotSource,
  PolicyError,
  TransferManifestSnapshotSource,
  type AttestationEvidence,
  type Evidence,
  type LoadedPolicy,
  type RuleResult,
  type ShortcutFlags,
  type SnapshotSource,
} from '@airlock/policy';
import { BundleVerifier, type VerificationResult } from '@airlock/verify';
import { UsageError } from '../../output.js';

/** The flags `verify artifact` and `report` share: the policy (file or shortcut flags) and where evidence is. */
export interface PolicyInputFlags extends ShortcutFlags {
  policy?: string;
  bundle?: string[];
  data?: string;
  mirrorStore?: string;
  mirror?: string;
  snapshot?: string[];
  osvDir?: string;
}

/** The runner's names for an output's bundles (runner/src/attestation.ts). */
export const RUNNER_BUNDLE_SUFFIXES = ['.provenance.sigstore.json', '.sbom.sigstore.json'] as const;
const MANIFEST_BUNDLE = join('attestations', 'manifest.sigstore.json');
const SHORTCUT_KEYS: (keyof ShortcutFlags)[] = [
  'sourceUri',
  'sourceRef',
  'sourceBranch',
  'sourceTag',
  'sourceVersionedTag',
  'builderId',
  'certificateIdentity',
  'certificateIdentityRegexp',
  'certificateOidcIssuer',
  'certificateOidcIssuerRegexp',
  'predicateType',
  'maxAge',
];

/** The policy file, or the implicit policy of the shortcut flags; never both (which would win would be a guess). */
export function loadPolicy(flags: PolicyInputFlags): LoadedPolicy {
  const shortcuts = SHORTCUT_KEYS.filter((k) => flags[k] !== undefined);
  if (flags.policy !== undefined) {
    if (shortcuts.length > 0)
      throw new UsageError(
        `--policy cannot be combined with shortcut flags (${shortcuts.join(', ')}): put them in the policy`,
      );
    return loadPolicyFile(flags.policy);
  }
  if (shortcuts.length === 0)
    throw new UsageError('give --policy FILE, or shortcut flags such as --source-uri and --certificate-identity');
  const picked: ShortcutFlags = {};
  for (const k of SHORTCUT_KEYS) if (flags[k] !== undefined) picked[k] = flags[k];
  return implicitPolicy(picked);
}

/**
 * One verifier per trusted root: --trusted-root, else <--data>/trusted_root.json, else the policy's trustedRoots.
 * The policy's public-key authorities become the verifier's out-of-band keys.
 */
export function verifiersFor(policy: LoadedPolicy, flags: { trustedRoot?: string; data?: string }): BundleVerifier[] {
  const roots = flags.trustedRoot
    ? [flags.trustedRoot]
    : flags.data
      ? [join(flags.data, 'trusted_root.json')]
      : (policy.document.trustedRoots ?? []);
  if (roots.length === 0)
    throw new UsageError('no trusted root: pass --trusted-root or --data, or list trustedRoots in the policy');
  const publicKeys: Record<string, string> = {};
  for (const a of Object.values(policy.document.authorities))
    if (a.publicKey) publicKeys[a.publicKey.hint] = readText(a.publicKey.path, 'public key');
  return roots.map((r) => new BundleVerifier(readJson(r, 'trusted root'), { publicKeys }));
}

/** The bundles given, or the runner's bundles beside the file. */
export function bundlePaths(file: string, given: readonly string[] | undefined): string[] {
  if (given && given.length > 0) return [...given];
  const found = RUNNER_BUNDLE_SUFFIXES.map((s) => `${file}${s}`).filter((p) => existsSync(p));
  if (found.length === 0)
    throw new UsageError(
      `no --bundle given and none beside ${file} (looked for ${RUNNER_BUNDLE_SUFFIXES.map((s) => basename(file) + s).join(', ')})`,
    );
  return found;
}

export interface CheckedBundles {
  attestations: AttestationEvidence[];
  /** Bundles that did not verify: a failed rule each, so the verdict says which and why. */
  failures: RuleResult[];
  /** Each verified bundle's parsed JSON (the report reads its log entries' inclusion proofs). */
  raw: Map<string, unknown>;
}

/** A bundle as read: where from (file path, registry reference) and its bytes. */
export interface BundleInput {
  uri: string;
  bytes: Buffer;
}

/** Verifies each bundle (trusted root, signature, log entries, subject = the artifact), any identity: the policy decides. */
export function checkBundles(
  paths: readonly string[],
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): CheckedBundles {
  return checkBundleInputs(
    paths.map((uri) => ({ uri, bytes: readBytes(uri, 'bundle') })),
    artifact,
    verifiers,
  );
}

export function checkBundleInputs(
  inputs: readonly BundleInput[],
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): CheckedBundles {
  const out: CheckedBundles = { attestations: [], failures: [], raw: new Map() };
  for (const { uri, bytes } of inputs) {
    const json = parseJson(bytes, uri, 'bundle');
    const r = verifyAny(json, artifact, verifiers);
    if ('error' in r) {
      out.failures.push({
        rule: 'attestations.signature',
        passed: false,
        seen: { uri, bundleSha256: sha256Hex(bytes), error: r.error },
        expected: 'a bundle that verifies against the trusted root and names the artifact',
        message: `${uri} does not verify: ${r.error}`,
      });
      continue;
    }
    out.attestations.push({ uri, bundleDigest: { sha256: sha256Hex(bytes) }, verification: r.result });
    out.raw.set(uri, json);
  }
  return out;
}

function verifyAny(
  json: unknown,
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): { result: VerificationResult } | { error: string } {
  let error = '';
  for (const v of verifiers) {
    try {
      return { result: v.verify(json, { artifactDigest: { sha256: artifact.sha256 }, allowAnyIdentity: true }) };
    } catch (err) {
      error = (err as Error).message;
    }
  }
  return { error };
}

/** The snapshot sources the flags name (each snapshot's signature verified now, with the first verifier that accepts it). */
export function snapshotSources(
  flags: PolicyInputFlags,
  verifiers: readonly BundleVerifier[],
): { source?: SnapshotSource; ids: SnapshotInfoForReport[] } {
  const ids: SnapshotInfoForReport[] = [];
  const sources: SnapshotSource[] = [];
  if (flags.mirrorStore !== undefined) sources.push(fromMirrorStore(flags.mirrorStore, verifiers, ids));
  if (flags.mirror !== undefined) sources.push(new MirrorLookupSnapshotSource(flags.mirror, { verifiers }));
  if (flags.snapshot && flags.snapshot.length > 0) {
    const s = new TransferManifestSnapshotSource();
    for (const p of flags.snapshot) {
      const { manifest, bundle } = readSnapshotFiles(p);
      addVerified(s, manifest, bundle, verifiers, p, ids);
    }
    sources.push(s);
  }
  if (sources.length === 0) return { ids };
  return { source: sources.length === 1 ? sources[0]! : combineSnapshotSources(sources), ids };
}

/** What the report shows of each snapshot it was given. */
export interface SnapshotInfoForReport {
  id: string;
  sequence?: number;
  where: string;
  signer?: string;
  issuer?: string;
}

/**
 * Every snapshot of a mirror store, with the sync bundle the import verified and kept (`signed_bundles`). The store
 * keeps the manifest as parsed JSON; the signed bytes are its canonical form (what mirror-sync wrote and the import
 * required), so they are re-derived with canonicalBytes and the signature is checked again here.
 */
function fromMirrorStore(
  dir: string,
  verifiers: readonly BundleVerifier[],
  ids: SnapshotInfoForReport[],
): SnapshotSource {
  const indexPath = join(dir, MIRROR_STORE_LAYOUT.index);
  if (!existsSync(indexPath))
    throw new UsageError(`--mirror-store ${dir}: no ${MIRROR_STORE_LAYOUT.index} (not a mirror store)`);
  const index = MirrorIndex.open(indexPath);
  const s = new TransferManifestSnapshotSource();
  try {
    for (const rec of index.listSnapshots()) {
      const d = index.getSnapshot(rec.sequence);
      const bundles = (d?.signedBundles ?? {}) as Record<string, unknown>;
      const bundle = bundles['attestations/manifest.sigstore.json'];
      if (!d || bundle === undefined) continue;
      addVerified(s, canonicalBytes(d.manifest), bundle, verifiers, `${dir} snapshot ${rec.sequence}`, ids);
    }
  } finally {
    index.close();
  }
  return s;
}

function addVerified(
  s: TransferManifestSnapshotSource,
  manifest: Buffer,
  bundle: unknown,
  verifiers: readonly BundleVerifier[],
  where: string,
  ids: SnapshotInfoForReport[],
): void {
  let last: unknown;
  for (const v of verifiers) {
    try {
      s.add(manifest, bundle, v, where);
      const m = JSON.parse(manifest.toString('utf8')) as { snapshot: { id: string; sequence?: number } };
      const r = v.verify(bundle, { artifactDigest: { sha256: sha256Hex(manifest) }, allowAnyIdentity: true });
      ids.push({
        id: m.snapshot.id,
        ...(typeof m.snapshot.sequence === 'number' ? { sequence: m.snapshot.sequence } : {}),
        where,
        ...(r.signer.subjectAlternativeName ? { signer: r.signer.subjectAlternativeName } : {}),
        ...(r.signer.issuer ? { issuer: r.signer.issuer } : {}),
      });
      return;
    } catch (err) {
      last = err;
    }
  }
  throw last instanceof Error ? last : new PolicyError('POLICY_SNAPSHOT_INVALID', `${where}: does not verify`);
}

/**
 * `--snapshot PATH`: an unpacked transfer bundle directory (manifest.json + attestations/manifest.sigstore.json),
 * or a manifest file whose bundle is `<file>.sigstore.json` or `attestations/manifest.sigstore.json` beside it.
 */
function readSnapshotFiles(path: string): { manifest: Buffer; bundle: unknown } {
  const isDir = existsSync(path) && statSync(path).isDirectory();
  const manifestPath = isDir ? join(path, 'manifest.json') : path;
  const candidates = isDir
    ? [join(path, MANIFEST_BUNDLE)]
    : [`${path}.sigstore.json`, join(dirname(resolve(path)), MANIFEST_BUNDLE)];
  const bundlePath = candidates.find((c) => existsSync(c));
  if (!bundlePath) throw new UsageError(`--snapshot ${path}: no signature found (looked for ${candidates.join(', ')})`);
  const bytes = readBytes(bundlePath, 'snapshot bundle');
  return {
    manifest: readBytes(manifestPath, 'snapshot manifest'),
    bundle: parseJson(bytes, bundlePath, 'snapshot bundle'),
  };
}

/** The OSV directory: --osv-dir, else the policy's advisories.osvDirectory. */
export function advisoriesFor(policy: LoadedPolicy, flags: PolicyInputFlags): Evidence['advisories'] {
  const dir = flags.osvDir ?? policy.document.advisories?.osvDirectory;
  if (!policy.document.advisories || dir === undefined) return undefined;
  return indexAdvisories(loadOsvDirectory(dir));
}

function readBytes(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`cannot read ${what} '${path}': ${(err as Error).message}`);
  }
}

function readText(path: string, what: string): string {
  return readBytes(path, what).toString('utf8');
}

function readJson(path: string, what: string): unknown {
  return parseJson(readBytes(path, what), path, what);
}

function parseJson(bytes: Buffer, path: string, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new UsageError(`${what} '${path}' is not JSON: ${(err as Error).message}`);
  }
}
