import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalBytes, sha256Hex } from '@airlock/core';
import type { Command } from 'commander';
import type { MirrorStore } from '@airlock/cas';
import type { IdentityPolicy } from '@airlock/verify';
import { readJsonFile } from '../context.js';
import { EXIT, fail, info, printResult, UsageError, type OutputOptions } from '../output.js';
import {
  INDEX_FLAG_HELP,
  openMirrorStore,
  S3_CONFIG_FLAG_HELP,
  sharedImportLock,
  STATE_DIR_FLAG_HELP,
  STORE_FLAG_HELP,
  storeLabel,
  workerStoreOf,
  type StoreFlags,
} from './mirror-store-open.js';
import { parseDuration, parseIntFlag, parseListen, runUntilSignal } from './cli-flags.js';

interface ImportFlags extends OutputOptions, StoreFlags {
  trustedRoot?: string;
  data?: string;
  syncIdentity?: string;
  syncIdentityRegexp?: string;
  syncIssuer?: string;
  allowGap?: boolean;
  maxBlobBytes?: string;
  maxSnapshotAge?: string;
  create?: boolean;
}

/** Counted progress lines on stderr, at most about one a second (and always the last). */
function progressLine(flags: OutputOptions, label: string): (done: number, total: number) => void {
  let lastShown = 0;
  return (done, total) => {
    if (done !== total && performance.now() - lastShown < 1000) return;
    lastShown = performance.now();
    info(flags, `  ${label} ${done}/${total}`);
  };
}

function syncPolicy(flags: ImportFlags): IdentityPolicy {
  if (!flags.syncIssuer || (!flags.syncIdentity && !flags.syncIdentityRegexp)) {
    throw new UsageError(
      'name the sync job: --sync-identity (or --sync-identity-regexp) and --sync-issuer (bundles signed by anyone else are refused)',
    );
  }
  return {
    issuer: flags.syncIssuer,
    ...(flags.syncIdentity ? { subject: flags.syncIdentity } : { subjectRegExp: flags.syncIdentityRegexp! }),
  };
}

// Moved to the light cli-flags.ts (commands import them without loading the mirror); re-exported for old importers.
export { parseDuration, parseIntFlag } from './cli-flags.js';

export function registerMirrorCommands(program: Command): void {
  const mirror = program
    .command('mirror')
    .description('the mirror inside the perimeter: import transfer bundles, serve them, check the store');

  mirror
    .command('import')
    .description(
      'verify a transfer bundle completely (signature, identity, manifest, every blob, sequence) and publish it atomically',
    )
    .argument('<bundle>', 'transfer bundle (.tar) written by `airlock sync`')
    .requiredOption('--store <dir|s3://bucket/prefix>', `${STORE_FLAG_HELP}; must exist unless --create`)
    .option('--index <dir|postgres://…>', INDEX_FLAG_HELP)
    .option('--s3-config <file>', S3_CONFIG_FLAG_HELP)
    .option('--state-dir <dir>', STATE_DIR_FLAG_HELP)
    .option('--create', 'make a new store at --store if there is none (first import)')
    .option('--trusted-root <file>', 'trusted_root.json of the trust plane that certifies the sync job')
    .option('--data <dir>', 'trust plane data directory (for its trusted_root.json)')
    .option('--sync-identity <san>', 'exact identity (SPIFFE ID) of the sync job')
    .option('--sync-identity-regexp <re>', 'anchored regular expression for the sync job identity')
    .option('--sync-issuer <url>', 'exact OIDC issuer of the sync job identity')
    .option('--allow-gap', 'accept a snapshot that does not extend the current head (sequence must still increase)')
    .option('--max-blob-bytes <n>', 'largest blob accepted', String(8 * 1024 ** 3))
    .option(
      '--max-snapshot-age <duration>',
      'refuse a snapshot whose signed creation time is older (e.g. 30d, 12h; default: no limit)',
    )
    .option('--json', 'print the result as JSON')
    .option('-q, --quiet', 'no progress output')
    .action(async (bundle: string, flags: ImportFlags) => {
      let store: MirrorStore | undefined;
      let sharedLock: Awaited<ReturnType<typeof sharedImportLock>>;
      try {
        const rootPath = flags.trustedRoot ?? (flags.data ? `${flags.data}/trusted_root.json` : undefined);
        if (!rootPath) throw new UsageError('--trusted-root (or --data) is required');
        const trustedRoot = readJsonFile(rootPath, 'trusted root');
        const policy = syncPolicy(flags);
        const maxBlobBytes = parseIntFlag('--max-blob-bytes', flags.maxBlobBytes ?? '');
        const maxSnapshotAgeMs =
          flags.maxSnapshotAge === undefined ? undefined : parseDuration('--max-snapshot-age', flags.maxSnapshotAge);
        if (!statSync(bundle, { throwIfNoEntry: false })?.isFile())
          throw new UsageError(`bundle '${bundle}' is not a readable file`);
        // Before opening: the opener's recovery of this host's leftovers must not race another host's import.
        sharedLock = await sharedImportLock(flags);
        store = await openMirrorStore(flags, { create: flags.create === true });
        // @airlock/mirror (the importer, the server, its identity/jose deps) loads in the action, not at registration.
        const { importBundle } = await import('@airlock/mirror');
        let lastShown = 0;
        const result = await importBundle(bundle, {
          store,
          trustedRoot,
          syncIdentity: policy,
          ...(flags.allowGap ? { allowGap: true } : {}),
          maxBlobBytes,
          ...(maxSnapshotAgeMs !== undefined ? { maxSnapshotAgeMs } : {}),
          onProgress: (e) => {
            if (e.phase === 'verified')
              info(
                flags,
                `verified snapshot ${e.snapshot} (sequence ${e.sequence}): ${e.entries} entries, ${e.blobs} blobs; importing…`,
              );
            else if (e.phase === 'blob' && (e.index === e.total || performance.now() - lastShown > 1000)) {
              lastShown = performance.now();
              info(flags, `  blobs ${e.index}/${e.total}`);
            }
          },
        });
        printResult(flags, { ok: true, ...result }, () =>
          [
            `imported snapshot ${result.snapshot.id}`,
            `  sequence:  ${result.snapshot.sequence} (previous ${result.snapshot.previous ?? 'none'})`,
            `  entries:   ${result.entries}, blobs: ${result.blobs} (${result.newBlobs} new, ${(result.bytes / 1e6).toFixed(1)} MB)`,
            `  signed by: ${result.signer.subjectAlternativeName ?? '?'} (${result.signer.issuer ?? '?'}), log index ${result.logIndexes.join(', ')}`,
            `  took:      ${(result.durationMs / 1000).toFixed(2)} s`,
          ].join('\n'),
        );
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
      } finally {
        await store?.close();
        await sharedLock?.release();
      }
    });

  mirror
    .command('serve')
    .description(
      'serve the store read-only to npm, pip, Nix (hashed-mirrors), Bazel and plain HTTP clients; never fetches upstream',
    )
    .requiredOption('--store <dir|s3://bucket/prefix>', STORE_FLAG_HELP)
    .option('--index <dir|postgres://…>', INDEX_FLAG_HELP)
    .option('--s3-config <file>', S3_CONFIG_FLAG_HELP)
    .option('--state-dir <dir>', STATE_DIR_FLAG_HELP)
    .option(
      '--index-poll <duration>',
      'with --index postgres://…: poll for new snapshots this often besides LISTEN/NOTIFY (default 2s)',
    )
    .option(
      '--no-index-listen',
      'poll only, no LISTEN (behind a pooler that cannot LISTEN, e.g. PgBouncer transaction mode)',
    )
    .option('--listen <addr>', 'HOST:PORT to bind', '127.0.0.1:0')
    .option(
      '--public-url <url>',
      'URL clients reach the mirror at (for npm tarball links); default: the listen address',
    )
    .option('--tls-cert <pem>', 'serve HTTPS with this certificate (chain)')
    .option('--tls-key <pem>', 'private key for --tls-cert')
    .option('--client-ca <pem>', 'require client certificates issued by this CA (mTLS)')
    .option(
      '--allow-spiffe-id <id>',
      'with --client-ca: only clients whose X509-SVID carries this SPIFFE ID (exact, or anchored ^…$ pattern; repeatable)',
      (v: string, acc: string[] = []) => [...acc, v],
    )
    .option('--workers <n>', 'processes sharing the socket (default 1)', '1')
    .option('--json', 'print {url} as JSON when listening')
    .action(
      async (
        flags: OutputOptions &
          StoreFlags & {
            listen: string;
            publicUrl?: string;
            tlsCert?: string;
            tlsKey?: string;
            clientCa?: string;
            allowSpiffeId?: string[];
            workers: string;
          },
      ) => {
        try {
          const { host, port } = parseListen(flags.listen);
          if (!!flags.tlsCert !== !!flags.tlsKey) throw new UsageError('--tls-cert and --tls-key go together');
          if (flags.clientCa && !flags.tlsCert) throw new UsageError('--client-ca needs --tls-cert/--tls-key');
          if (flags.allowSpiffeId && !flags.clientCa) throw new UsageError('--allow-spiffe-id needs --client-ca');
          const store = await openMirrorStore(flags, { follow: true });
          const workerStore = workerStoreOf(flags);
          const { startMirrorServer } = await import('@airlock/mirror');
          const server = await startMirrorServer({
            store,
            ...(workerStore ? { workerStore } : {}),
            host,
            port,
            workers: parseIntFlag('--workers', flags.workers),
            ...(flags.publicUrl ? { publicUrl: flags.publicUrl } : {}),
            ...(flags.tlsCert
              ? {
                  tls: {
                    cert: readFileSync(flags.tlsCert),
                    key: readFileSync(flags.tlsKey!),
                    ...(flags.clientCa ? { ca: readFileSync(flags.clientCa), requestClientCert: true } : {}),
                    ...(flags.allowSpiffeId ? { allowSpiffeIds: flags.allowSpiffeId } : {}),
                  },
                }
              : {}),
          });
          const head = store.head();
          printResult(
            flags,
            { url: server.url, snapshot: head?.id ?? null, sequence: head?.sequence ?? null },
            () =>
              `mirror serving ${storeLabel(flags)} on ${server.url} (snapshot ${head?.id ?? 'none'}, sequence ${head?.sequence ?? '-'})`,
          );
          runUntilSignal(async () => {
            await server.close();
            await store.close();
          });
        } catch (err) {
          fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.UNAVAILABLE);
        }
      },
    );

  mirror
    .command('fsck')
    .description(
      're-hash every blob, quarantine corrupt ones (never served again), check every referenced blob exists; exit 1 unless clean',
    )
    .requiredOption('--store <dir|s3://bucket/prefix>', STORE_FLAG_HELP)
    .option('--index <dir|postgres://…>', INDEX_FLAG_HELP)
    .option('--s3-config <file>', S3_CONFIG_FLAG_HELP)
    .option('--state-dir <dir>', STATE_DIR_FLAG_HELP)
    .option('--remove-orphans', 'delete blobs no snapshot references (left by interrupted imports)')
    .option('--json', 'print the report as JSON')
    .action(async (flags: OutputOptions & StoreFlags & { removeOrphans?: boolean }) => {
      let store: MirrorStore | undefined;
      let sharedLock: Awaited<ReturnType<typeof sharedImportLock>>;
      try {
        // Another host's staged blobs are not orphans: fsck holds the import slot like the file lock's holders.
        sharedLock = await sharedImportLock(flags);
        store = await openMirrorStore(flags);
        const total = store.index.listBlobs().length;
        const shown = progressLine(flags, 'checked blobs');
        info(flags, `fsck ${storeLabel(flags)}: re-hashing ${total} blobs…`);
        const { fsck } = await import('@airlock/cas');
        const report = await fsck(store, {
          ...(flags.removeOrphans ? { removeOrphans: true } : {}),
          onProgress: (checked) => shown(checked, Math.max(total, checked)),
        });
        printResult(flags, { ...report, ok: report.clean }, () =>
          [
            `fsck ${storeLabel(flags)}: ${report.clean ? 'clean' : 'PROBLEMS FOUND'}`,
            `  checked ${report.checked}, ok ${report.ok}, corrupt ${report.corrupt.length}, missing ${report.missing.length}, orphans ${report.orphans.length}`,
            ...report.corrupt.map((c) => `  corrupt (quarantined): ${JSON.stringify(c)}`),
            ...report.missing.map((m) => `  missing: ${JSON.stringify(m)}`),
          ].join('\n'),
        );
        await store.close();
        store = undefined;
        await sharedLock?.release();
        if (!report.clean) process.exit(EXIT.FAILURE);
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
      } finally {
        await store?.close();
        await sharedLock?.release();
      }
    });

  mirror
    .command('export-snapshot')
    .description(
      'write one snapshot’s signed transfer manifest (manifest.json + the sync bundle) for `verify --snapshot DIR`',
    )
    .argument('<dir>', 'target directory (gets manifest.json and attestations/manifest.sigstore.json)')
    .requiredOption('--store <dir|s3://bucket/prefix>', STORE_FLAG_HELP)
    .option('--index <dir|postgres://…>', INDEX_FLAG_HELP)
    .option('--s3-config <file>', S3_CONFIG_FLAG_HELP)
    .option('--state-dir <dir>', STATE_DIR_FLAG_HELP)
    .option('--snapshot <id|sequence>', 'the snapshot (sha256:<hex> or its sequence number; default: the head)')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, flags: OutputOptions & StoreFlags & { snapshot?: string }) => {
      let store: MirrorStore | undefined;
      try {
        store = await openMirrorStore(flags);
        const r = exportSnapshot(store, dir, flags.snapshot);
        printResult(
          flags,
          { ok: true, ...r },
          () => `exported snapshot ${r.id} (sequence ${r.sequence}) to ${dir}: ${r.files.join(', ')}`,
        );
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
      } finally {
        await store?.close();
      }
    });

  mirror
    .command('export-bazel-cache')
    .description('write a Bazel repository cache (content_addressable/sha256/<hex>/file) for --repository_cache')
    .argument('<dir>', 'target directory')
    .requiredOption('--store <dir|s3://bucket/prefix>', STORE_FLAG_HELP)
    .option('--index <dir|postgres://…>', INDEX_FLAG_HELP)
    .option('--s3-config <file>', S3_CONFIG_FLAG_HELP)
    .option('--state-dir <dir>', STATE_DIR_FLAG_HELP)
    .option('--copy', 'copy files instead of hard-linking them')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, flags: OutputOptions & StoreFlags & { copy?: boolean }) => {
      let store: MirrorStore | undefined;
      try {
        store = await openMirrorStore(flags);
        const { exportBazelRepositoryCache } = await import('@airlock/mirror');
        const r = await exportBazelRepositoryCache(store, dir, {
          hardlink: !flags.copy,
          onProgress: progressLine(flags, 'exported blobs'),
        });
        printResult(
          flags,
          { ...r, ok: r.failed.length === 0 },
          () =>
            `exported ${r.total} blobs to ${dir} (${r.linked} linked, ${r.copied} copied, ${r.unchanged} unchanged, ${r.failed.length} failed)`,
        );
        if (r.failed.length) process.exitCode = EXIT.FAILURE;
      } catch (err) {
        fail(flags, err, err instanceof UsageError ? EXIT.USAGE : EXIT.FAILURE);
      } finally {
        await store?.close();
      }
    });
}

/**
 * Writes a snapshot as an unpacked transfer bundle would hold it: manifest.json is the manifest's canonical form
 * (the bytes the sync job signed; the store keeps it parsed) and the sync bundle exactly as the import kept it.
 * Nothing is trusted on the way: `verify --snapshot` re-verifies the signature against its own trusted root.
 */
function exportSnapshot(
  store: MirrorStore,
  dir: string,
  which: string | undefined,
): { id: string; sequence: number; manifestSha256: string; files: string[] } {
  const key = which === undefined ? store.index.head()?.sequence : /^\d+$/.test(which) ? Number(which) : which;
  if (key === undefined) throw new UsageError(`the mirror store ${store.dir} has no snapshot yet`);
  const d = store.index.getSnapshot(key);
  if (!d) throw new UsageError(`no snapshot ${String(key)} in ${store.dir}`);
  const bundle = (d.signedBundles as Record<string, unknown> | null)?.[MANIFEST_BUNDLE];
  if (bundle === undefined) throw new UsageError(`snapshot ${d.id} has no ${MANIFEST_BUNDLE} in the store`);
  const manifest = canonicalBytes(d.manifest);
  mkdirSync(join(dir, 'attestations'), { recursive: true });
  writeFileSync(join(dir, 'manifest.json'), manifest);
  writeFileSync(join(dir, MANIFEST_BUNDLE), JSON.stringify(bundle));
  return {
    id: d.id,
    sequence: d.sequence,
    manifestSha256: sha256Hex(manifest),
    files: ['manifest.json', MANIFEST_BUNDLE],
  };
}

const MANIFEST_BUNDLE = 'attestations/manifest.sigstore.json';
