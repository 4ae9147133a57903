import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import {
  isSha256Digest,
  parseImageReference,
  readCosignAttestations,
  readSigstoreBundles,
  RegistryClient,
} from '@airlock/oci';
import { fail, UsageError, type OutputOptions } from '../../output.js';
import { addPolicyInputOptions, finishVerify } from './artifact.js';
import { exitCodeFor } from './errors.js';
import { evaluateChecked, type ArtifactVerifyFlags, type PolicyRun } from './evaluate.js';
import { checkBundleInputs, loadPolicy, verifiersFor } from './inputs.js';
import { addVsaOptions, type VsaSigningFlags } from './vsa.js';

interface RegistryFlags {
  registryPlainHttp?: boolean;
  registryCa?: string;
  registryUsername?: string;
  registryPasswordFile?: string;
}

type Flags = ArtifactVerifyFlags & VsaSigningFlags & RegistryFlags & OutputOptions;

/**
 * `airlock verify image REF`: the tag is resolved to a digest first (the verdict is about that digest); the Sigstore
 * bundles referring to it (referrers API, else the `sha256-<hex>` fallback index) are fetched digest-checked, verified
 * about the image digest, and evaluated like a file's. cosign `.att` envelopes are counted and must each match a
 * verified bundle's envelope (they carry no verification material of their own that airlock checks offline).
 */
export function registerVerifyImage(verify: Command): void {
  addVsaOptions(
    addPolicyInputOptions(
      verify
        .command('image')
        .description('verify an OCI image’s attestations (registry referrers) against a release policy')
        .argument('<ref>', 'host[:port]/repository(:tag|@sha256:…)')
        .option('--registry-plain-http', 'talk to the registry over plain HTTP (loopback or lab registries)')
        .option('--registry-ca <pem>', 'CA certificate(s) for the registry’s TLS')
        .option('--registry-username <user>', 'registry user for HTTP Basic auth (with --registry-password-file)')
        .option('--registry-password-file <file>', 'file holding the registry password'),
    ),
  ).action(async (ref: string, flags: Flags) => {
    let run: PolicyRun & { cosignAttestations: number };
    try {
      if (flags.bundle && flags.bundle.length > 0)
        throw new UsageError('verify image reads its bundles from the registry: --bundle is for files');
      run = await verifyImageByPolicy(ref, flags);
    } catch (err) {
      fail(flags, err, exitCodeFor(err));
    }
    await finishVerify(run, flags, { image: run.file, cosignAttestations: run.cosignAttestations });
  });
}

export async function verifyImageByPolicy(
  ref: string,
  flags: Flags,
): Promise<PolicyRun & { cosignAttestations: number }> {
  const policy = loadPolicy(flags);
  const verifiers = verifiersFor(policy, flags);
  const parsed = parseImageReference(ref);
  if (!parsed.registry) throw new UsageError(`'${ref}' names no registry (host[:port]/repository…)`);
  const client = registryClient(parsed.registry, flags);
  const repo = parsed.repository;
  const digest = parsed.digest ?? (await client.manifestDigest(repo, parsed.tag ?? 'latest'));
  if (!digest || !isSha256Digest(digest))
    throw new UsageError(`${ref}: the registry has no manifest for ${parsed.tag ?? 'latest'}`);
  if (parsed.digest && parsed.tag) {
    const byTag = await client.manifestDigest(repo, parsed.tag);
    if (byTag !== parsed.digest) throw new UsageError(`${ref}: tag ${parsed.tag} points at ${byTag ?? 'nothing'}`);
  }
  const fetched = (await readSigstoreBundles(client, repo, digest)).filter(
    (b) => (b.bundle as { dsseEnvelope?: unknown }).dsseEnvelope !== undefined,
  );
  const artifact = { name: `${parsed.registry}/${repo}`, digest: { sha256: digest.slice('sha256:'.length) } };
  const bundles = checkBundleInputs(
    fetched.map((b) => ({ uri: `${parsed.registry}/${repo}@${b.manifestDigest}`, bytes: b.bytes })),
    artifact.digest,
    verifiers,
  );
  const atts = await readCosignAttestations(client, repo, digest);
  const verifiedSigs = new Set(
    bundles.attestations.map((a) => {
      const env = (bundles.raw.get(a.uri) as { dsseEnvelope?: { signatures?: { sig?: string }[] } }).dsseEnvelope;
      return env?.signatures?.[0]?.sig ?? '';
    }),
  );
  const stray = atts.filter((a) => !a.envelope?.signatures.some((s) => verifiedSigs.has(s.sig)));
  if (stray.length > 0)
    bundles.failures.push({
      rule: 'attestations.cosign',
      passed: false,
      seen: { uri: `${parsed.registry}/${repo}:${'sha256-' + artifact.digest.sha256}.att`, unmatched: stray.length },
      expected: 'every .att envelope is one of the verified Sigstore bundles',
      message: `${stray.length} cosign .att envelope(s) match no verified bundle`,
    });
  const file = `${parsed.registry}/${repo}@${digest}`;
  const run = await evaluateChecked({ file, artifact, policy, bundles, verifiers }, flags);
  return { ...run, cosignAttestations: atts.length };
}

function registryClient(host: string, flags: RegistryFlags): RegistryClient {
  if ((flags.registryUsername === undefined) !== (flags.registryPasswordFile === undefined))
    throw new UsageError('--registry-username and --registry-password-file go together');
  const read = (p: string, what: string): string => {
    try {
      return readFileSync(p, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read ${what} '${p}': ${(err as Error).message}`);
    }
  };
  return new RegistryClient({
    url: `${flags.registryPlainHttp ? 'http' : 'https'}://${host}`,
    ...(flags.registryCa !== undefined ? { ca: read(flags.registryCa, 'registry CA') } : {}),
    ...(flags.registryUsername !== undefined
      ? {
          auth: {
            username: flags.registryUsername,
            password: read(flags.registryPasswordFile!, 'registry password').trim(),
          },
        }
      : {}),
  });
}
