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
  for (const input of inputs) addCheck(out, checkOne(input, artifact, verifiers));
  return out;
}

/**
 * checkBundleInputs, yielding to the event loop before each bundle: a bundle's signature, certificate chain and
 * log proof checks take milliseconds of CPU, and a server verifying several at once must still answer its sockets
 * (a registry response, another request) between them. Same result, same order. `started` holds checks begun
 * earlier (startBundleCheck, e.g. as each bundle arrived from a registry) for some of the inputs: used as they are.
 */
export async function checkBundleInputsYielding(
  inputs: readonly BundleInput[],
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
  started?: ReadonlyMap<BundleInput, Promise<BundleCheck>>,
): Promise<CheckedBundles> {
  const out: CheckedBundles = { attestations: [], failures: [], raw: new Map() };
  for (const input of inputs)
    addCheck(out, await (started?.get(input) ?? startBundleCheck(input, artifact, verifiers)));
  return out;
}

/** One bundle's check, before it is added to a CheckedBundles (in input order, whenever it ran). */
export type BundleCheck =
  { uri: string; failure: RuleResult } | { uri: string; attestation: AttestationEvidence; json: unknown };

/**
 * The check of one bundle, run after yielding to the event loop (see checkBundleInputsYielding). The check depends
 * only on the bytes, the artifact digest and the verifiers, so when it runs does not change its result. A thrown
 * error (bytes that are not JSON) rejects the promise; it is marked handled, so a check started early and never
 * awaited (a later registry read failed) is no unhandled rejection.
 */
export function startBundleCheck(
  input: BundleInput,
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): Promise<BundleCheck> {
  const p = new Promise<void>((resolve) => setImmediate(resolve)).then(() => checkOne(input, artifact, verifiers));
  p.catch(() => undefined);
  return p;
}

function addCheck(out: CheckedBundles, check: BundleCheck): void {
  if ('failure' in check) out.failures.push(check.failure);
  else {
    out.attestations.push(check.attestation);
    out.raw.set(check.uri, check.json);
  }
}

function checkOne(
  { uri, bytes }: BundleInput,
  artifact: { sha256: string },
  verifiers: readonly BundleVerifier[],
): BundleCheck {
  const json = parseJsonBytes(bytes, uri, 'bundle');
  const r = verifyAny(json, artifact, verifiers);
  if ('error' in r)
    return {
      uri,
      failure: {
        rule: 'attestations.signature',
        passed: false,
        seen: { uri, bundleSha256: sha256Hex(bytes), error: r.error },
        expected: 'a bundle that verifies against the trusted root and names the artifact',
        message: `${uri} does not verify: ${r.error}`,
      },
    };
  return { uri, attestation: { uri, bundleDigest: { sha256: sha256Hex(bytes) }, verification: r.result }, json };
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
