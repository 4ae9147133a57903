import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { canonicalBytes, sha256Hex, type Statement } from '@airlock/core';
import { BlobStore } from './blob-store.js';
import { writeBundle, type BundleFile } from './bundle/bundle-writer.js';
import { SyncError, toEntryFailure, type EntryFailure } from './errors.js';
import { HttpClient } from './http/http-client.js';
import { parseBazelFetchList, parseBazelQueryOutput } from './inputs/bazel.js';
import { detectInputKind } from './inputs/detect.js';
import { parseGenericList } from './inputs/generic-list.js';
import { parseNixFetchList, parseNixShowDerivation } from './inputs/nix.js';
import { parseNpmLockfile } from './inputs/npm-lockfile.js';
import { parseRequirementsTxt } from './inputs/requirements-txt.js';
import { buildManifest, draftsToEntries, formatCreatedAt } from './manifest.js';
import { createProgress, type ProgressMode } from './progress.js';
import type { EntryDraft, EntryTask, ResolveContext } from './resolve/context.js';
import { noRegistryError, npmTasks } from './resolve/npm-registry.js';
import { bazelTasks, genericTasks, nixTasks } from './resolve/plain-files.js';
import { pypiTasks, PYPI_PUBLIC_INDEX } from './resolve/pypi-index.js';
import { readSyncState, writeSyncState, type SyncState } from './state-file.js';
import { buildManifestStatement, buildSbomStatement, type InputRecord, type ManifestSigner } from './statement.js';
import type {
  BazelFetch,
  GenericFetch,
  InputKind,
  NixFetch,
  NpmLockPackage,
  PinnedRequirement,
  TransferManifest,
} from './types.js';

export interface SyncInput {
  path: string;
  /** Detected from the file name/content when omitted. */
  kind?: InputKind;
}

export interface SyncOptions {
  inputs: SyncInput[];
  /** Where the bundle goes; written as `<out>.partial-*` and renamed only when complete. */
  out: string;
  /** State file (last snapshot id + sequence); read before, updated atomically after a successful run. */
  state?: string;
  /** Explicit snapshot chain (for runs without a state file). Must agree with the state file when both are given. */
  sequence?: number;
  previous?: string | null;
  /** Snapshot time (default now, second precision). Fix it to get byte-identical bundles from identical inputs. */
  createdAt?: string | Date;

  /**
   * npm registry that stands in for the public one: packuments and tarballs whose lockfile `resolved` URL is under
   * https://registry.npmjs.org/ are fetched from here instead. Other registries are used as the lockfile names them.
   */
  npmRegistry?: string;
  /**
   * `@scope` → registry base, for lockfile entries without `resolved` in that scope (from an `.npmrc`'s
   * `@scope:registry=`). Entries without `resolved` outside these scopes use `npmRegistry`.
   */
  npmScopeRegistries?: Record<string, string>;
  /** Accept inputs that pin nothing (default: refused with SYNC_EMPTY; an empty bundle is rarely what was meant). */
  allowEmpty?: boolean;
  /**
   * Runs after the inputs are parsed and the output location checked, before any download: e.g. checking that
   * the trust plane that will sign the bundle is reachable, so a run cannot download gigabytes and then fail.
   */
  preflight?: () => Promise<void>;
  /** PEP 503/691 index base (default https://pypi.org/simple/). */
  pypiIndex?: string;
  /** Mirror mode: upstream origin → replacement base (see UrlRewriter). */
  rewriteHosts?: Record<string, string>;
  /** `mirror://<name>/` bases for Nix URLs, merged over the built-in table. */
  nixMirrors?: Record<string, string[]>;
  /** Skip (with a note) recursive Nix FODs instead of refusing the input. */
  nixSkipRecursive?: boolean;

  concurrency?: number;
  perHostConcurrency?: number;
  retries?: number;
  retryBaseDelayMs?: number;
  retryMaxDelayMs?: number;
  idleTimeoutMs?: number;
  /** Largest blob accepted (default 4 GiB). */
  maxBlobBytes?: number;
  /** Largest packument / index page accepted (default 256 MiB). */
  maxMetadataBytes?: number;
  /** Staging directory (default a fresh `.airlock-sync-*` beside `out`); removed afterwards. */
  workDir?: string;
  /**
   * Blobs staged as open unlinked files (default 1024): unreachable by name, so written into the bundle without
   * hashing them again. Past this many, blobs are staged as named files and re-hashed when the bundle is written.
   */
  maxSealedFiles?: number;

  signer?: ManifestSigner;
  /** SBOM port: given the manifest, returns a CycloneDX JSON document. */
  sbom?: (manifest: TransferManifest) => Promise<object>;

  progress?: ProgressMode;
  quiet?: boolean;
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Injectable for tests. */
  fetch?: typeof globalThis.fetch;
}

/** Plain JSON (no Dates, Maps or class instances): `airlock sync --json` prints it as is. */
export interface SyncResult {
  bundlePath: string;
  bundleSha256: string;
  manifest: TransferManifest;
  snapshotId: string;
  sequence: number;
  previous: string | null;
  /** Number of manifest entries. */
  entries: number;
  /** Number of distinct blobs. */
  blobs: number;
  /** Size of the bundle file in bytes. */
  bytes: number;
  /** Sum of blob sizes. */
  blobBytes: number;
  /** Downloads started (after pin-level dedupe; retries not counted). */
  downloads: number;
  durationMs: number;
  signed: boolean;
  sbom: boolean;
  inputs: InputRecord[];
  notes: string[];
}

const MAX_INPUT_BYTES = 64 * 1024 * 1024;

interface Parsed {
  npm: NpmLockPackage[];
  requirements: PinnedRequirement[];
  bazel: BazelFetch[];
  nix: NixFetch[];
  generic: GenericFetch[];
  records: InputRecord[];
  notes: string[];
}

async function readInputs(options: SyncOptions): Promise<Parsed> {
  const out: Parsed = { npm: [], requirements: [], bazel: [], nix: [], generic: [], records: [], notes: [] };
  const npmById = new Map<string, NpmLockPackage>();
  const reqById = new Map<string, PinnedRequirement>();
  const bazelByName = new Map<string, BazelFetch>();
  for (const input of options.inputs) {
    let buf: Buffer;
    try {
      const st = await stat(input.path);
      if (!st.isFile()) throw new Error('not a regular file');
      if (st.size > MAX_INPUT_BYTES) throw new Error(`larger than ${MAX_INPUT_BYTES} bytes`);
      buf = await readFile(input.path);
    } catch (cause) {
      throw new SyncError('SYNC_INPUT_INVALID', `${input.path}: cannot read input: ${(cause as Error).message}`, {
        cause,
      });
    }
    const text = buf.toString('utf8');
    const kind = input.kind ?? detectInputKind(input.path, text);
    const src = input.path;
    out.records.push({ kind, name: basename(input.path), digest: { sha256: sha256Hex(buf) } });
    const nixOpts = {
      ...(options.nixMirrors ? { mirrors: options.nixMirrors } : {}),
      skipRecursive: options.nixSkipRecursive === true,
    };
    switch (kind) {
      case 'npm-lock': {
        const p = parseNpmLockfile(text, src);
        out.notes.push(...p.notes);
        for (const e of p.entries) {
          const prev = npmById.get(`${e.name}@${e.version}`);
          if (prev && prev.integrity !== e.integrity) {
            throw new SyncError(
              'SYNC_INPUT_CONFLICT',
              `npm ${e.name}@${e.version}: lockfiles disagree on integrity (${prev.integrity} vs ${e.integrity} in ${src})`,
            );
          }
          if (!prev) npmById.set(`${e.name}@${e.version}`, e);
        }
        break;
      }
      case 'requirements': {
        const p = parseRequirementsTxt(text, src);
        out.notes.push(...p.notes);
        for (const r of p.entries) {
          const prev = reqById.get(`${r.normalizedName}==${r.version}`);
          if (prev) prev.sha256 = [...new Set([...prev.sha256, ...r.sha256])];
          else reqById.set(`${r.normalizedName}==${r.version}`, { ...r, sha256: [...r.sha256] });
        }
        break;
      }
      case 'bazel-fetch':
      case 'bazel-query': {
        const p = kind === 'bazel-fetch' ? parseBazelFetchList(text, src) : parseBazelQueryOutput(text, src);
        out.notes.push(...p.notes);
        for (const b of p.entries) {
          const prev = bazelByName.get(b.name);
          if (prev && JSON.stringify(prev.expected) !== JSON.stringify(b.expected)) {
            throw new SyncError('SYNC_INPUT_CONFLICT', `bazel ${b.name}: inputs pin different hashes`);
          }
          if (!prev) bazelByName.set(b.name, b);
        }
        break;
      }
      case 'nix-drv':
      case 'nix-fetch': {
        const p =
          kind === 'nix-drv' ? parseNixShowDerivation(text, src, nixOpts) : parseNixFetchList(text, src, nixOpts);
        out.notes.push(...p.notes);
        out.nix.push(...p.entries);
        break;
      }
      case 'generic': {
        const p = parseGenericList(text, src);
        out.notes.push(...p.notes);
        out.generic.push(...p.entries);
        break;
      }
      default:
        throw new SyncError('SYNC_OPTIONS_INVALID', `${src}: unknown input kind '${String(kind)}'`);
    }
  }
  out.npm = [...npmById.values()];
  out.requirements = [...reqById.values()];
  out.bazel = [...bazelByName.values()];
  return out;
}

/** sequence/previous from explicit options and/or the state file; fails on any inconsistency rather than forking the chain. */
function chainPosition(
  options: SyncOptions,
  state: SyncState | undefined,
): { sequence: number; previous: string | null } {
  const { sequence, previous } = options;
  if (sequence !== undefined && (!Number.isSafeInteger(sequence) || sequence < 1)) {
    throw new SyncError('SYNC_OPTIONS_INVALID', `sequence must be an integer >= 1 (got ${sequence})`);
  }
  if (previous !== undefined && previous !== null && !/^sha256:[0-9a-f]{64}$/.test(previous)) {
    throw new SyncError('SYNC_OPTIONS_INVALID', `previous must be 'sha256:<64 hex>' or null (got '${previous}')`);
  }
  const fromState = state ? { sequence: state.sequence + 1, previous: state.snapshotId } : undefined;
  if (fromState) {
    if (
      (sequence !== undefined && sequence !== fromState.sequence) ||
      (previous !== undefined && previous !== fromState.previous)
    ) {
      throw new SyncError(
        'SYNC_STATE_INVALID',
        `the state file says the next snapshot is #${fromState.sequence} after ${fromState.previous}, but the options ask for #${sequence ?? '?'} after ${previous ?? '?'}`,
      );
    }
    return fromState;
  }
  const seq = sequence ?? 1;
  const prev = previous === undefined ? (seq === 1 ? null : undefined) : previous;
  if (prev === undefined)
    throw new SyncError(
      'SYNC_OPTIONS_INVALID',
      `sequence ${seq} needs 'previous' (the id of snapshot #${seq - 1}) or a state file`,
    );
  if ((seq === 1) !== (prev === null)) {
    throw new SyncError(
      'SYNC_OPTIONS_INVALID',
      seq === 1 ? 'snapshot #1 has no previous snapshot' : `snapshot #${seq} must name its previous snapshot`,
    );
  }
  return { sequence: seq, previous: prev };
}

/**
 * Pinned lockfiles in, transfer bundle out (manifest.md). Order of business: parse and refuse unpinned inputs
 * (no network yet) → resolve metadata and download everything, verifying each file against its pin → build the
 * manifest, sign it, write the tar under a temporary name → rename → update the state file. Any failed entry
 * fails the run with every failure listed, and nothing is written.
 */
export async function syncToBundle(options: SyncOptions): Promise<SyncResult> {
  const started = Date.now();
  if (!options.out) throw new SyncError('SYNC_OPTIONS_INVALID', "'out' (bundle path) is required");
  if (!Array.isArray(options.inputs) || options.inputs.length === 0)
    throw new SyncError('SYNC_OPTIONS_INVALID', 'no inputs given');
  const sealed = options.maxSealedFiles;
  if (sealed !== undefined && !(Number.isSafeInteger(sealed) && sealed >= 0))
    throw new SyncError('SYNC_OPTIONS_INVALID', `maxSealedFiles must be an integer >= 0 (got ${sealed})`);
  const out = resolvePath(options.out);
  const createdAt = formatCreatedAt(options.createdAt);
  const state = options.state ? await readSyncState(options.state) : undefined;
  const { sequence, previous } = chainPosition(options, state);

  const parsed = await readInputs(options);
  const notes = [...parsed.notes];
  checkPinsSomething(parsed, options.allowEmpty === true);
  checkNpmRegistries(parsed.npm, options);
  await checkOutputWritable(out);
  await options.preflight?.();

  const http = new HttpClient({
    concurrency: options.concurrency,
    perHostConcurrency: options.perHostConcurrency,
    retries: options.retries,
    retryBaseDelayMs: options.retryBaseDelayMs,
    retryMaxDelayMs: options.retryMaxDelayMs,
    idleTimeoutMs: options.idleTimeoutMs,
    rewriteHosts: options.rewriteHosts,
    fetch: options.fetch,
  });
  const progress = createProgress({
    mode: options.quiet ? 'none' : (options.progress ?? 'auto'),
    stream: options.progressStream,
  });

  const workDir = options.workDir
    ? await mkdtemp(join(resolvePath(options.workDir), 'airlock-sync-'))
    : await mkdtemp(join(dirname(out), '.airlock-sync-'));
  const partial = `${out}.partial-${randomBytes(6).toString('hex')}`;
  const store = new BlobStore(workDir, http, (n) => progress.bytes(n), options.maxSealedFiles);
  try {
    const ctx: ResolveContext = {
      http,
      store,
      note: (m) => notes.push(m),
      planned: (n) => progress.planned(n),
      done: () => progress.done(),
      maxBlobBytes: options.maxBlobBytes ?? 4 * 1024 ** 3,
      maxMetadataBytes: options.maxMetadataBytes ?? 256 * 1024 ** 2,
    };
    const tasks: EntryTask[] = [
      ...npmTasks(parsed.npm, ctx, options.npmRegistry, options.npmScopeRegistries),
      ...pypiTasks(parsed.requirements, ctx, options.pypiIndex ?? PYPI_PUBLIC_INDEX),
      ...bazelTasks(parsed.bazel, ctx),
      ...nixTasks(parsed.nix, ctx),
      ...genericTasks(parsed.generic, ctx),
    ];
    const settled = await Promise.allSettled(tasks.map((t) => t.run()));
    const failures: EntryFailure[] = [];
    const reasons: unknown[] = [];
    const drafts: EntryDraft[] = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') drafts.push(...s.value);
      else {
        failures.push(toEntryFailure(tasks[i]!.label, s.reason));
        reasons.push(s.reason);
      }
    });
    if (failures.length > 0) {
      progress.failed(failures.length);
      // The causes travel along so a caller can tell "upstream unreachable" (every cause a network error) from a
      // failed check such as a hash mismatch.
      throw new SyncError(
        'SYNC_ENTRIES_FAILED',
        `sync failed, no bundle written: ${failures.length} of ${tasks.length} entries failed:\n  - ${failures.map((f) => `${f.entry}: ${f.message}`).join('\n  - ')}`,
        { details: { failures }, cause: new AggregateError(reasons, 'entry failures') },
      );
    }

    const manifest = buildManifest({ entries: draftsToEntries(drafts), sequence, previous, createdAt });
    // The SBOM is made from the entries first, so the manifest can commit to its digest before it is signed.
    let sbom: { doc: object; bytes: Buffer } | undefined;
    if (options.sbom) {
      let doc: object;
      try {
        doc = await options.sbom(manifest);
      } catch (cause) {
        throw new SyncError('SYNC_SIGN_FAILED', `the SBOM generator failed: ${(cause as Error).message}`, { cause });
      }
      sbom = { doc, bytes: canonicalBytes(doc) };
      manifest.sbom = { sha256: sha256Hex(sbom.bytes), size: sbom.bytes.length };
    }
    const manifestBytes = canonicalBytes(manifest);
    const attestations: BundleFile[] = [];
    const attest = async (statement: Statement, file: string): Promise<void> => {
      if (!options.signer) return;
      let bundle: unknown;
      try {
        bundle = await options.signer.attest(statement);
      } catch (cause) {
        throw new SyncError('SYNC_SIGN_FAILED', `signing ${file} failed: ${(cause as Error).message}`, { cause });
      }
      const text = typeof bundle === 'string' ? bundle : JSON.stringify(bundle);
      if (typeof text !== 'string')
        throw new SyncError('SYNC_SIGN_FAILED', `the signer returned nothing JSON-serialisable for ${file}`);
      attestations.push({ name: file, bytes: Buffer.from(text, 'utf8') });
    };
    await attest(
      buildManifestStatement(manifest, sha256Hex(manifestBytes), parsed.records),
      'attestations/manifest.sigstore.json',
    );
    if (sbom) {
      attestations.push({ name: 'attestations/sbom.cdx.json', bytes: sbom.bytes });
      await attest(buildSbomStatement(sbom.doc, manifest.sbom!.sha256), 'attestations/sbom.sigstore.json');
    }
    if (!options.signer) notes.push('no signer configured: the bundle carries no manifest attestation');

    const blobs = manifest.blobs.map((b) => {
      const staged = store.get(b.sha256);
      if (!staged)
        throw new SyncError('SYNC_BUNDLE_FAILED', `internal: blob ${b.sha256} is listed but was never staged`);
      return {
        sha256: b.sha256,
        size: b.size,
        ...(staged.staged.kind === 'path' ? { path: staged.staged.path } : { sealed: staged.staged.file }),
      };
    });
    const written = await writeBundle(partial, manifestBytes, attestations, blobs);
    await rename(partial, out);
    if (options.state) {
      await writeSyncState(options.state, {
        version: 1,
        snapshotId: manifest.snapshot.id,
        sequence,
        createdAt,
        bundleSha256: written.sha256,
      });
    }
    progress.stop();
    printNotes(options, notes);
    return {
      bundlePath: out,
      bundleSha256: written.sha256,
      manifest,
      snapshotId: manifest.snapshot.id,
      sequence,
      previous,
      entries: manifest.entries.length,
      blobs: manifest.blobs.length,
      bytes: written.size,
      blobBytes: manifest.blobs.reduce((n, b) => n + b.size, 0),
      downloads: store.downloads,
      durationMs: Date.now() - started,
      signed: options.signer !== undefined,
      sbom: options.sbom !== undefined,
      inputs: parsed.records,
      notes,
    };
  } catch (err) {
    progress.stop();
    await rm(partial, { force: true });
    throw err;
  } finally {
    await store.close();
    await rm(workDir, { recursive: true, force: true });
  }
}

function checkPinsSomething(parsed: Parsed, allowEmpty: boolean): void {
  const n =
    parsed.npm.length + parsed.requirements.length + parsed.bazel.length + parsed.nix.length + parsed.generic.length;
  if (n === 0 && !allowEmpty)
    throw new SyncError(
      'SYNC_EMPTY',
      `the inputs (${parsed.records.map((r) => r.name).join(', ')}) pin nothing to fetch: refusing to write an empty bundle (pass --allow-empty if that is what you mean)`,
    );
}

/** Every npm entry without `resolved` needs a registry; all of them are named at once, before any download. */
function checkNpmRegistries(npm: readonly NpmLockPackage[], options: SyncOptions): void {
  const scopes = options.npmScopeRegistries ?? {};
  const orphans = npm.filter(
    (p) =>
      p.resolved === undefined &&
      options.npmRegistry === undefined &&
      !(p.name.startsWith('@') && scopes[p.name.slice(0, p.name.indexOf('/'))] !== undefined),
  );
  if (orphans.length > 0) throw noRegistryError(orphans);
}

/** The bundle's directory must exist (or be creatable) and take a file: checked before any download. */
async function checkOutputWritable(out: string): Promise<void> {
  const probe = join(dirname(out), `.airlock-sync-probe-${randomBytes(6).toString('hex')}`);
  try {
    if ((await stat(out).catch(() => undefined))?.isDirectory()) throw new Error('it is a directory');
    await mkdir(dirname(out), { recursive: true });
    await writeFile(probe, '', { flag: 'wx' });
  } catch (cause) {
    throw new SyncError('SYNC_OUTPUT_UNWRITABLE', `cannot write the bundle to ${out}: ${(cause as Error).message}`, {
      cause,
    });
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
}

function printNotes(options: SyncOptions, notes: readonly string[]): void {
  if (options.quiet || options.progress === 'none' || notes.length === 0) return;
  const stream = options.progressStream ?? process.stderr;
  const shown = notes.slice(0, 50);
  for (const n of shown) stream.write(`note: ${n}\n`);
  if (notes.length > shown.length)
    stream.write(`note: … ${notes.length - shown.length} more (see the result's notes)\n`);
}
