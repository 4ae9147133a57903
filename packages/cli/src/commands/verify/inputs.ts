import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { canonicalBytes } from '@airlock/core';
import { MIRROR_STORE_LAYOUT, MirrorIndex } from '@airlock/cas';
import {
  bundleVerifiers,
  combineSnapshotSources,
  implicitPolicy,
  indexAdvisories,
  loadOsvDirectory,
  loadPolicyFile,
  policyTrustedRoots,
  VerifiedSnapshots,
  type LoadedPolicy,
  type PolicyContext,
  type ShortcutFlags,
  type SnapshotInfo,
  type SnapshotSource,
} from '@airlock/policy';
import type { BundleVerifier } from '@airlock/verify';
import { readJsonFile } from '../../context.js';
import { UsageError } from '../../output.js';

/** The flags `verify artifact|image` and `report` share: the policy (file or shortcut flags) and where evidence is. */
export interface PolicyInputFlags extends ShortcutFlags {
  policy?: string;
  bundle?: string[];
  data?: string;
  mirrorStore?: string;
  snapshot?: string[];
  osvDir?: string;
}

/** The runner's names for an output's bundles (runner/src/attestation.ts). */
export const RUNNER_BUNDLE_SUFFIXES = ['.provenance.sigstore.json', '.sbom.sigstore.json'] as const;
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

/** One verifier per trusted root: --trusted-root, else <--data>/trusted_root.json, else the policy's trustedRoots. */
export function verifiersFor(policy: LoadedPolicy, flags: { trustedRoot?: string; data?: string }): BundleVerifier[] {
  const path = flags.trustedRoot ?? (flags.data ? join(flags.data, 'trusted_root.json') : undefined);
  const roots = path !== undefined ? [readJsonFile(path, 'trusted root')] : policyTrustedRoots(policy);
  if (roots.length === 0)
    throw new UsageError('no trusted root: pass --trusted-root or --data, or list trustedRoots in the policy');
  return bundleVerifiers(policy, roots);
}

/**
 * Everything the library needs besides the bundles, from the flags: the policy, its verifiers, the snapshots
 * (--mirror-store, --snapshot; each signature verified now) and the OSV advisories.
 */
export function policyContext(flags: PolicyInputFlags & { trustedRoot?: string }): PolicyContext & {
  verifiers: readonly BundleVerifier[];
} {
  const policy = loadPolicy(flags);
  const verifiers = verifiersFor(policy, flags);
  const snaps = snapshotSources(flags, verifiers);
  const advisories = advisoriesFor(policy, flags);
  return {
    policy,
    verifiers,
    ...(snaps.source ? { snapshotSource: snaps.source } : {}),
    snapshotInfo: snaps.ids,
    ...(advisories ? { advisories } : {}),
    now: new Date(),
  };
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

/** The snapshot sources the flags name (each snapshot's signature verified now, with the first verifier that accepts it). */
export function snapshotSources(
  flags: Pick<PolicyInputFlags, 'mirrorStore' | 'snapshot'>,
  verifiers: readonly BundleVerifier[],
): { source?: SnapshotSource; ids: SnapshotInfo[] } {
  const collections: VerifiedSnapshots[] = [];
  if (flags.mirrorStore !== undefined) collections.push(fromMirrorStore(flags.mirrorStore, verifiers));
  if (flags.snapshot && flags.snapshot.length > 0) {
    const s = new VerifiedSnapshots(verifiers);
    for (const p of flags.snapshot) s.addFiles(p);
    collections.push(s);
  }
  const ids = collections.flatMap((c) => c.infos);
  if (collections.length === 0) return { ids };
  const sources = collections.map((c) => c.source);
  return { source: sources.length === 1 ? sources[0]! : combineSnapshotSources(sources), ids };
}

/**
 * Every snapshot of a mirror store, with the sync bundle the import verified and kept (`signed_bundles`). The store
 * keeps the manifest as parsed JSON; the signed bytes are its canonical form (what mirror-sync wrote and the import
 * required), so they are re-derived with canonicalBytes and the signature is checked again here.
 */
export function fromMirrorStore(dir: string, verifiers: readonly BundleVerifier[]): VerifiedSnapshots {
  const indexPath = join(dir, MIRROR_STORE_LAYOUT.index);
  if (!existsSync(indexPath))
    throw new UsageError(`--mirror-store ${dir}: no ${MIRROR_STORE_LAYOUT.index} (not a mirror store)`);
  const index = MirrorIndex.open(indexPath);
  const s = new VerifiedSnapshots(verifiers);
  try {
    for (const rec of index.listSnapshots()) {
      const d = index.getSnapshot(rec.sequence);
      const bundles = (d?.signedBundles ?? {}) as Record<string, unknown>;
      const bundle = bundles['attestations/manifest.sigstore.json'];
      if (!d || bundle === undefined) continue;
      s.add(canonicalBytes(d.manifest), bundle, `${dir} snapshot ${rec.sequence}`);
    }
  } finally {
    index.close();
  }
  return s;
}

/** The OSV directory: --osv-dir, else the policy's advisories.osvDirectory. */
export function advisoriesFor(policy: LoadedPolicy, flags: PolicyInputFlags): PolicyContext['advisories'] {
  const dir = flags.osvDir ?? policy.document.advisories?.osvDirectory;
  if (!policy.document.advisories || dir === undefined) return undefined;
  return indexAdvisories(loadOsvDirectory(dir));
}
