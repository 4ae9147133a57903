import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { canonicalize, sha256Hex } from '@airlock/core';
import { globToRegExp, loadPolicyFile, parseDuration, parsePolicy, type LoadedPolicy } from '@airlock/policy';
import { parseDocument } from 'yaml';
import { AdmissionError } from '../errors.js';
import { admissionPolicyProblems } from './schema.js';
import type { AdmissionPolicyDocument, ImagePolicyDocument, ReleaseRef, VsaFastPath } from './types.js';

const MAX_POLICY_BYTES = 1024 * 1024;

/** One image policy, ready to match and evaluate. */
export interface ImagePolicy {
  name: string;
  mode: 'enforce' | 'warn';
  images: readonly RegExp[];
  exclude: readonly RegExp[];
  namespaces?: readonly RegExp[];
  release: LoadedPolicy;
  vsa?: VsaFastPath & { maxAgeSeconds: number };
  /**
   * sha256 over everything that decides this policy's verification result (release policy digest + VSA settings):
   * the cache key's policy part. Matching and mode are not in it: they are re-evaluated on every request.
   */
  digest: string;
}

export interface LoadedAdmissionPolicy {
  uri: string;
  /** sha256 of the admission policy bytes and every release policy it reads. */
  digest: string;
  unmatched: 'deny' | 'allow';
  policies: readonly ImagePolicy[];
  /** The release policy toolchain files of a workspace must pass (the `toolchains` section). */
  toolchains?: LoadedPolicy;
  /** Every file read: the admission policy and its release policy files (watched for changes). */
  files: readonly string[];
}

/**
 * Parses and validates an admission policy (YAML or JSON, duplicate keys refused); every problem names its field,
 * e.g. `admission.policies[0].mode: must be equal to one of the allowed values: "enforce", "warn"`. Release
 * policies given by file are read relative to `baseDir`.
 */
export function parseAdmissionPolicy(
  bytes: Buffer | string,
  uri = 'admission-policy',
  baseDir = '.',
): LoadedAdmissionPolicy {
  const buf = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const value = readYaml(buf, uri);
  const shape = admissionPolicyProblems(value);
  const problems = shape.length === 0 ? semanticProblems(value as AdmissionPolicyDocument) : shape;
  if (problems.length > 0) throw invalid(uri, problems);
  const doc = value as AdmissionPolicyDocument;
  const files: string[] = [];
  const policies = doc.policies.map((p, i) => compile(p, `admission.policies[${i}]`, uri, baseDir, files));
  const toolchains = doc.toolchains
    ? loadRelease(doc.toolchains.release, 'admission.toolchains.release', uri, baseDir, files)
    : undefined;
  const digest = sha256Hex(
    Buffer.concat([
      buf,
      ...[...policies.map((p) => p.release), ...(toolchains ? [toolchains] : [])].map((r) =>
        Buffer.from(r.digest.sha256),
      ),
    ]),
  );
  return { uri, digest, unmatched: doc.unmatched ?? 'deny', policies, ...(toolchains ? { toolchains } : {}), files };
}

export function loadAdmissionPolicyFile(path: string): LoadedAdmissionPolicy {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (cause) {
    throw new AdmissionError(
      'ADMISSION_POLICY_UNREADABLE',
      `cannot read admission policy ${path}: ${(cause as Error).message}`,
      { cause },
    );
  }
  const loaded = parseAdmissionPolicy(bytes, pathToFileURL(resolve(path)).href, dirname(resolve(path)));
  return { ...loaded, files: [resolve(path), ...loaded.files] };
}

function readYaml(buf: Buffer, uri: string): unknown {
  if (buf.length > MAX_POLICY_BYTES)
    throw new AdmissionError('ADMISSION_POLICY_UNREADABLE', `${uri}: larger than ${MAX_POLICY_BYTES} bytes`);
  const doc = parseDocument(buf.toString('utf8'), { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0)
    throw new AdmissionError(
      'ADMISSION_POLICY_UNREADABLE',
      `${uri}: not valid YAML or JSON: ${doc.errors[0]!.message}`,
    );
  try {
    return doc.toJS({ maxAliasCount: 100 });
  } catch (cause) {
    throw new AdmissionError('ADMISSION_POLICY_UNREADABLE', `${uri}: ${(cause as Error).message}`, { cause });
  }
}

function semanticProblems(doc: AdmissionPolicyDocument): string[] {
  const problems: string[] = [];
  const seen = new Map<string, number>();
  doc.policies.forEach((p, i) => {
    const first = seen.get(p.name);
    if (first !== undefined)
      problems.push(`admission.policies[${i}].name: '${p.name}' is also the name of policies[${first}]`);
    else seen.set(p.name, i);
    if (p.vsa && parseDuration(p.vsa.maxAge) === 0)
      problems.push(`admission.policies[${i}].vsa.maxAge: must be longer than 0s`);
  });
  return problems;
}

function compile(p: ImagePolicyDocument, at: string, uri: string, baseDir: string, files: string[]): ImagePolicy {
  const release = loadRelease(p.release, `${at}.release`, uri, baseDir, files);
  const vsa = p.vsa ? { ...p.vsa, maxAgeSeconds: parseDuration(p.vsa.maxAge) } : undefined;
  const digest = sha256Hex(Buffer.from(canonicalize({ release: release.digest.sha256, vsa: p.vsa ?? null }), 'utf8'));
  return {
    name: p.name,
    mode: p.mode ?? 'enforce',
    images: p.images.map(globToRegExp),
    exclude: (p.exclude ?? []).map(globToRegExp),
    ...(p.namespaces ? { namespaces: p.namespaces.map(globToRegExp) } : {}),
    release,
    ...(vsa ? { vsa } : {}),
    digest,
  };
}

function loadRelease(ref: ReleaseRef, at: string, uri: string, baseDir: string, files: string[]): LoadedPolicy {
  try {
    if (ref.file !== undefined) {
      const file = isAbsolute(ref.file) ? ref.file : resolve(baseDir, ref.file);
      files.push(file);
      return loadPolicyFile(file);
    }
    const loaded = parsePolicy(canonicalize(ref.inline), `${uri}#${at.replace(/^admission\./, '')}`);
    absolutePaths(loaded, baseDir);
    return loaded;
  } catch (cause) {
    throw invalid(uri, [`${at}: ${(cause as Error).message}`]);
  }
}

/** Inline release policies resolve their relative paths against the admission policy's directory. */
function absolutePaths(loaded: LoadedPolicy, baseDir: string): void {
  const abs = (x: string): string => (isAbsolute(x) ? x : resolve(baseDir, x));
  const d = loaded.document;
  if (d.trustedRoots) d.trustedRoots = d.trustedRoots.map(abs);
  for (const a of Object.values(d.authorities)) if (a.publicKey) a.publicKey.path = abs(a.publicKey.path);
  if (d.advisories) d.advisories.osvDirectory = abs(d.advisories.osvDirectory);
}

function invalid(uri: string, problems: string[]): AdmissionError {
  return new AdmissionError(
    'ADMISSION_POLICY_INVALID',
    `${uri} is not a valid admission policy:\n  - ${problems.join('\n  - ')}`,
    {
      details: { problems },
    },
  );
}
