/**
 * The airlock side of the mirror end-to-end tests (test/mirror-*.test.ts), driven only through the built CLI:
 * the trust plane (`airlock up`), sync (`airlock sync`), import (`airlock mirror import`), serve and fsck; plus
 * a snapshot of a store's observable state, compared before and after every refused import.
 */
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { runCli, startCli, type CliResult } from './cli.js';

export interface CliJson extends CliResult {
  json: Record<string, unknown>;
  /** `error.code` of a failed command (with --json), else undefined. */
  errorCode: string | undefined;
}

/** Runs the CLI with --json already in `args` and parses stdout (a failure to parse is a test failure). */
export async function runCliJson(args: string[]): Promise<CliJson> {
  const r = await runCli(args);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    throw new Error(
      `'airlock ${args.join(' ')}' printed no JSON (exit ${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  const error = json.error as { code?: unknown } | undefined;
  return { ...r, json, errorCode: typeof error?.code === 'string' ? error.code : undefined };
}

export interface PlaneEndpoints {
  tlogUrl: string;
  caUrl: string;
  identityIssuerUrl: string;
  trustDomain: string;
  trustedRoot: string;
}

export interface CliPlane {
  dir: string;
  endpoints: PlaneEndpoints;
  /** The identity `airlock sync --data <dir>` signs with by default. */
  syncIdentity: string;
  stop(): Promise<void>;
}

/** `airlock up --data DIR --json` in the foreground, until stop(). */
export async function startPlane(dir: string, trustDomain?: string): Promise<CliPlane> {
  const p = await startCli(
    ['up', '--data', dir, '--json', ...(trustDomain ? ['--trust-domain', trustDomain] : [])],
    (o) => o.includes('"tlogUrl"') && o.trim().endsWith('}'),
  );
  const endpoints = JSON.parse(p.stdout()) as PlaneEndpoints;
  return { dir, endpoints, syncIdentity: `spiffe://${endpoints.trustDomain}/airlock/mirror-sync`, stop: p.stop };
}

/**
 * Where a test's mirror store lives: a directory, or the CLI flags of another backend (e.g. `--store s3://… --index
 * DIR`; its credentials come from the environment the CLI inherits).
 */
export type StoreRef = string | { args: string[] };

/** The CLI flags naming a store. */
export const storeArgs = (store: StoreRef): string[] => (typeof store === 'string' ? ['--store', store] : store.args);

/** `airlock mirror import` args trusting `plane` and its default sync identity. */
export function importArgs(bundle: string, store: StoreRef, plane: CliPlane, extra: string[] = []): string[] {
  return [
    'mirror',
    'import',
    bundle,
    ...storeArgs(store),
    '--create',
    '--data',
    plane.dir,
    '--sync-identity',
    plane.syncIdentity,
    '--sync-issuer',
    plane.endpoints.identityIssuerUrl,
    '--json',
    ...extra,
  ];
}

export interface RunningMirror {
  url: string;
  snapshot: string | null;
  sequence: number | null;
  stop(): Promise<void>;
}

export async function startMirror(store: StoreRef, extra: string[] = []): Promise<RunningMirror> {
  const m = await startCli(
    ['mirror', 'serve', ...storeArgs(store), '--listen', '127.0.0.1:0', '--json', ...extra],
    (o) => o.trim().endsWith('}'),
  );
  const info = JSON.parse(m.stdout()) as { url: string; snapshot: string | null; sequence: number | null };
  return { ...info, stop: m.stop };
}

export interface FsckReport {
  clean: boolean;
  checked: number;
  corrupt: unknown[];
  missing: unknown[];
  orphans: unknown[];
}

export async function fsck(store: StoreRef): Promise<{ code: number | null; report: FsckReport }> {
  const r = await runCliJson(['mirror', 'fsck', ...storeArgs(store), '--json']);
  return { code: r.code, report: r.json as unknown as FsckReport };
}

export interface StoreState {
  head: { sequence: number; id: string } | null;
  /** Row count of every table of index.sqlite. */
  rows: Record<string, number>;
  /** Every file under the store (but the SQLite database itself) with its size. */
  files: string[];
}

/**
 * What must not change when an import is refused or interrupted: the head snapshot, the index's row counts and
 * every file of the store (blobs, quarantine, staging, temp). The database is opened read-only and closed before
 * returning, so the test never holds it while the CLI imports.
 */
export function storeState(store: string): StoreState {
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (!e.name.startsWith('index.sqlite'))
        files.push(
          `${relative(store, p)} ${e.isFile() ? statSync(p).size : e.isSymbolicLink() ? 'symlink' : 'special'}`,
        );
    }
  };
  if (existsSync(store)) walk(store);
  const dbPath = join(store, 'index.sqlite');
  if (!existsSync(dbPath)) return { head: null, rows: {}, files: files.sort() };
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const tables = (
      db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]
    ).map((r) => r.name);
    const rows = Object.fromEntries(
      tables.map((t) => [t, (db.prepare(`SELECT count(*) AS n FROM "${t}"`).get() as { n: number }).n]),
    );
    const head =
      (db.prepare('SELECT s.sequence, s.id FROM head h JOIN snapshots s ON s.sequence = h.sequence').get() as
        { sequence: number; id: string } | undefined) ?? null;
    return { head, rows, files: files.sort() };
  } finally {
    db.close();
  }
}

/** Blob file of a digest in a store (the layout the issue fixes: blobs/sha256/<aa>/<hex>). */
export const blobPath = (store: string, hex: string): string => join(store, 'blobs', 'sha256', hex.slice(0, 2), hex);

export const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;
