import { readFileSync } from 'node:fs';
import { sha256Hex } from '@airlock/core';
import { BundleVerifier, type VerificationResult } from '@airlock/verify';
import { PolicyError } from '../errors.js';
import type { AttestationEvidence, RuleResult } from '../evidence.js';
import type { LoadedPolicy } from '../load.js';

/** A bundle as read: where from (file path, registry reference) and its bytes. */
export interface BundleInput {
  uri: string;
  bytes: Buffer;
}

export interface CheckedBundles {
  attestations: AttestationEvidence[];
  /** Bundles that did not verify: a failed rule each, so the verdict says which and why. */
  failures: RuleResult[];
  /** Each verified bundle's parsed JSON (the report reads its log entries' inclusion proofs). */
  raw: Map<string, unknown>;
}

/**
 * One verifier per trusted root (parsed trusted_root.json documents). The policy's public-key authorities become
 * each verifier's out-of-band keys; their files are operator configuration, read here.
 */
export function bundleVerifiers(policy: LoadedPolicy, trustedRoots: readonly unknown[]): BundleVerifier[] {
  if (trustedRoots.length === 0)
    throw new PolicyError('POLICY_INPUT_INVALID', 'no trusted root given (and the policy lists no trustedRoots)');
  const publicKeys: Record<string, string> = {};
  for (const a of Object.values(policy.document.authorities))
    if (a.publicKey) publicKeys[a.publicKey.hint] = readText(a.publicKey.path, 'public key');
  return trustedRoots.map((r, i) => {
    try {
      return new BundleVerifier(r, { publicKeys });
    } catch (cause) {
      throw new PolicyError('POLICY_INPUT_INVALID', `trusted root #${i + 1}: ${(cause as Error).message}`, { cause });
    }
  });
}

/** The policy's `trustedRoots` files, parsed (for callers that take them from the policy). */
export function policyTrustedRoots(policy: LoadedPolicy): unknown[] {
  return (policy.document.trustedRoots ?? []).map((p) =>
    parseJsonBytes(readBytes(p, 'trusted root'), p, 'trusted root'),
  );
}

/**
 * Verifies each bundle (trusted root, signature, log entries, subject = the artifact) for any identity: the policy
 * decides which identities count. A bundle that does not verify becomes a failed `attestations.signature` rule.
 */
export function checkBundleInputs(
  inputs: readonly BundleInput[],
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): CheckedBundles {
  const out: CheckedBundles = { attestations: [], failures: [], raw: new Map() };
  for (const input of inputs) checkOne(out, input, artifact, verifiers);
  return out;
}

/**
 * checkBundleInputs, yielding to the event loop before each bundle: a bundle's signature, certificate chain and
 * log proof checks take milliseconds of CPU, and a server verifying several at once must still answer its sockets
 * (a registry response, another request) between them. Same result, same order.
 */
export async function checkBundleInputsYielding(
  inputs: readonly BundleInput[],
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): Promise<CheckedBundles> {
  const out: CheckedBundles = { attestations: [], failures: [], raw: new Map() };
  for (const input of inputs) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    checkOne(out, input, artifact, verifiers);
  }
  return out;
}

function checkOne(
  out: CheckedBundles,
  { uri, bytes }: BundleInput,
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): void {
  const json = parseJsonBytes(bytes, uri, 'bundle');
  const r = verifyAny(json, artifact, verifiers);
  if ('error' in r) {
    out.failures.push({
      rule: 'attestations.signature',
      passed: false,
      seen: { uri, bundleSha256: sha256Hex(bytes), error: r.error },
      expected: 'a bundle that verifies against the trusted root and names the artifact',
      message: `${uri} does not verify: ${r.error}`,
    });
    return;
  }
  out.attestations.push({ uri, bundleDigest: { sha256: sha256Hex(bytes) }, verification: r.result });
  out.raw.set(uri, json);
}

/** Bundle files read from disk (`uri` = the path). */
export function readBundleFiles(paths: readonly string[]): BundleInput[] {
  return paths.map((uri) => ({ uri, bytes: readBytes(uri, 'bundle') }));
}

function verifyAny(
  json: unknown,
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): { result: VerificationResult } | { error: string } {
  let error = 'no verifier';
  for (const v of verifiers) {
    try {
      return { result: v.verify(json, { artifactDigest: { sha256: artifact.sha256 }, allowAnyIdentity: true }) };
    } catch (err) {
      error = (err as Error).message;
    }
  }
  return { error };
}

export function readBytes(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new PolicyError('POLICY_INPUT_INVALID', `cannot read ${what} '${path}': ${(cause as Error).message}`, {
      cause,
    });
  }
}

function readText(path: string, what: string): string {
  return readBytes(path, what).toString('utf8');
}

export function parseJsonBytes(bytes: Buffer, where: string, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch (cause) {
    throw new PolicyError('POLICY_INPUT_INVALID', `${what} '${where}' is not JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}
