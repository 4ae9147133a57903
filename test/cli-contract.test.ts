/**
 * The CLI contract (README "CLI"): on every subcommand, a usage error (unknown flag, missing required argument or
 * option, excess argument) exits 2, a service that cannot be reached exits 3, and with --json stdout holds exactly
 * one JSON object — the result, or `{ok:false, error:{code,message}}` for every failure, usage errors included.
 *
 * The commands are enumerated from buildProgram(), so a new command without an entry in CONTRACT fails this test.
 * Everything runs through the built CLI against real servers on loopback: a live trust plane, a plane that was
 * started and stopped (stale endpoints.json), a loopback port nobody listens on, and one held busy.
 */
import { generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { buildProgram, EXAMPLES } from '@airlock/cli';
import { sha256Hex } from '@airlock/core';
import { makePki } from '@airlock/testkit';
import { runCli as runCliNow, startCli as startCliNow, type CliResult } from './helpers/cli.js';

// Up to 3 CLI processes at a time (the concurrent cells below would otherwise start dozens on a shared machine),
// and timeouts that allow for waiting for a slot.
const SLOTS = 3;
const CELL_TIMEOUT_MS = 600_000;
vi.setConfig({ testTimeout: CELL_TIMEOUT_MS, hookTimeout: CELL_TIMEOUT_MS });
let running = 0;
const waiting: Array<() => void> = [];
async function gated<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= SLOTS) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}
const runCli = (args: string[]): Promise<CliResult> => gated(() => runCliNow(args));
/** Starts a server command and stops it once it has printed its first JSON object; returns its stdout. */
const serveOnce = (args: string[]): Promise<string> =>
  gated(async () => {
    const server = await startCliNow(args, (out) => firstJson(out) !== undefined, 120_000);
    await server.stop();
    return server.stdout();
  });

/** Paths, ports and URLs the expectations refer to; filled in by beforeAll. */
interface Fixture {
  root: string;
  /** A loopback port nothing listens on. */
  closedPort: number;
  /** A loopback port held open by this test (a server cannot bind it). */
  busyPort: number;
  /** A data directory in which no plane was ever started. */
  noPlane: string;
  /** The data directory of a plane that was started and stopped again: its endpoints.json is stale. */
  stalePlane: string;
  /** The data directory of a plane running for the whole file. */
  livePlane: string;
  issuerUrl: string;
  tlogUrl: string;
  artifact: string;
  predicate: string;
  keyPem: string;
  /** A generic fetch list pinning one file on a live upstream, and one pinning a file on the closed port. */
  listLive: string;
  listDown: string;
  /** A SigningConfig naming the closed port as CA and log. */
  signingConfigDown: string;
  /** An S3 config file (`--s3-config`) naming the closed port as the object store's endpoint. */
  s3ConfigDown: string;
  /** A syntactically valid (unsigned) OIDC token: enough to get as far as contacting the CA. */
  jwt: string;
  /** A valid build spec (the mirror is given by flag). */
  spec: string;
  /** A mirror store with one imported snapshot, and the transfer bundle it came from. */
  store: string;
  transferBundle: string;
  /** An admission policy (any image, runner-signed), a registries file naming the closed port, a TLS pair. */
  admissionPolicy: string;
  registriesDown: string;
  tls: { certFile: string; keyFile: string; caFile: string };
  fresh: () => string;
}

type Args = (f: Fixture) => string[];

interface CommandContract {
  /** Arguments satisfying every required argument and option (the values need not lead to success). */
  valid: Args;
  /** Lacks a required argument or option (or, for a command that takes none, has one too many). */
  missing: Args;
  /** Service-down scenarios, each → exit 3; or why the command reaches no service. */
  down: Record<string, Args> | { none: string };
  /** A successful run printing its JSON result (long-running servers: the first JSON object they print); or why
   * this file does not run it. Error paths print JSON in every case above. */
  ok: { args: Args; serves?: true } | { notHere: string };
}

const SPIFFE_CLI = 'spiffe://airlock.internal/airlock/cli';
const SPIFFE_SYNC = 'spiffe://airlock.internal/airlock/mirror-sync';
const url = (port: number): string => `http://127.0.0.1:${port}`;

/** A registration entries file for `identity agent` (the agent only reads it). */
function agentEntries(f: Fixture): string {
  const file = join(f.fresh(), 'entries.json');
  writeFileSync(file, JSON.stringify({ entries: [{ spiffeId: SPIFFE_CLI, selectors: ['unix:uid:0'] }] }));
  return file;
}

const CONTRACT: Record<string, CommandContract> = {
  demo: {
    valid: () => [],
    missing: () => ['unexpected-argument'],
    down: { none: 'starts its own plane, upstream and mirror on loopback' },
    ok: { notHere: 'the whole chain takes minutes: test/demo.test.ts checks `airlock demo --json`' },
  },
  up: {
    valid: (f) => ['--data', f.fresh()],
    missing: () => [],
    down: { 'its port is taken': (f) => ['--data', f.fresh(), '--tlog-port', String(f.busyPort)] },
    ok: { args: (f) => ['--data', f.fresh()], serves: true },
  },
  'identity token': {
    valid: (f) => ['--data', f.livePlane, '--subject', SPIFFE_CLI, '--break-glass'],
    missing: (f) => ['--data', f.livePlane, '--break-glass'],
    down: {
      'no plane in --data': (f) => ['--data', f.noPlane, '--subject', SPIFFE_CLI, '--break-glass'],
      'stale endpoints.json': (f) => ['--data', f.stalePlane, '--subject', SPIFFE_CLI, '--break-glass'],
    },
    ok: { args: (f) => ['--data', f.livePlane, '--subject', SPIFFE_CLI, '--break-glass'] },
  },
  'identity agent': {
    valid: (f) => ['--socket', join(f.fresh(), 'agent.sock'), '--entries', agentEntries(f), '--data', f.livePlane],
    missing: (f) => ['--socket', join(f.fresh(), 'agent.sock'), '--data', f.livePlane],
    down: { none: 'serves a local socket and signs with the issuer key in --data' },
    ok: {
      args: (f) => ['--socket', join(f.fresh(), 'agent.sock'), '--entries', agentEntries(f), '--data', f.livePlane],
      serves: true,
    },
  },
  'identity svid': {
    valid: (f) => ['--socket', join(f.fresh(), 'agent.sock'), '--out-dir', f.fresh()],
    missing: (f) => ['--socket', join(f.fresh(), 'agent.sock')],
    down: {
      'no agent listens on the socket': (f) => ['--socket', join(f.fresh(), 'none.sock'), '--out-dir', f.fresh()],
    },
    ok: { notHere: 'needs an agent this process is registered with: test/identity-svid.test.ts runs one' },
  },
  'tlog serve': {
    valid: (f) => ['--data', f.fresh()],
    missing: () => [],
    down: { 'its port is taken': (f) => ['--data', f.fresh(), '--listen', `127.0.0.1:${f.busyPort}`] },
    ok: { args: (f) => ['--data', f.fresh()], serves: true },
  },
  'tlog monitor': {
    valid: (f) => ['--url', f.tlogUrl, '--state', join(f.fresh(), 'state.json')],
    missing: (f) => ['--url', f.tlogUrl],
    down: { 'log not listening': (f) => ['--url', url(f.closedPort), '--state', join(f.fresh(), 'state.json')] },
    ok: { args: (f) => ['--url', f.tlogUrl, '--state', join(f.fresh(), 'state.json')] },
  },
  'tlog witness-serve': {
    valid: (f) => witnessServeArgs(f),
    missing: () => ['--name', 'witness.example/c'],
    down: { 'its port is taken': (f) => [...witnessServeArgs(f), '--listen', `127.0.0.1:${f.busyPort}`] },
    ok: { args: (f) => witnessServeArgs(f), serves: true },
  },
  'tlog witness': {
    valid: (f) => witnessArgs(f, f.tlogUrl),
    missing: (f) => ['--url', `${f.tlogUrl}/api/v2`],
    down: { 'log not listening': (f) => witnessArgs(f, url(f.closedPort)) },
    ok: { args: (f) => witnessArgs(f, f.tlogUrl) },
  },
  sign: {
    valid: (f) => [f.artifact, '--data', f.livePlane],
    missing: (f) => ['--data', f.livePlane],
    down: {
      'no plane in --data': (f) => [f.artifact, '--data', f.noPlane, '--bundle', join(f.fresh(), 'b.json')],
      'stale endpoints.json': (f) => [f.artifact, '--data', f.stalePlane, '--bundle', join(f.fresh(), 'b.json')],
      'CA not listening': (f) => [
        f.artifact,
        ...['--fulcio-url', url(f.closedPort), '--rekor-url', url(f.closedPort), '--identity-token', f.jwt],
        ...['--bundle', join(f.fresh(), 'b.json')],
      ],
      'log not listening (key signing)': (f) => [
        f.artifact,
        ...['--key', f.keyPem, '--rekor-url', url(f.closedPort), '--bundle', join(f.fresh(), 'b.json')],
      ],
    },
    ok: { args: (f) => [f.artifact, '--data', f.livePlane, '--bundle', join(f.fresh(), 'b.json')] },
  },
  attest: {
    valid: (f) => [f.artifact, '--predicate-type', 'https://example.com/p', '--predicate', f.predicate],
    missing: (f) => [f.artifact, '--predicate', f.predicate],
    down: {
      'no plane in --data': (f) => [
        ...[f.artifact, '--predicate-type', 'https://example.com/p', '--predicate', f.predicate],
        ...['--data', f.noPlane, '--bundle', join(f.fresh(), 'b.json')],
      ],
      'stale endpoints.json': (f) => [
        ...[f.artifact, '--predicate-type', 'https://example.com/p', '--predicate', f.predicate],
        ...['--data', f.stalePlane, '--bundle', join(f.fresh(), 'b.json')],
      ],
      'log not listening (key signing)': (f) => [
        ...[f.artifact, '--predicate-type', 'https://example.com/p', '--predicate', f.predicate],
        ...['--key', f.keyPem, '--rekor-url', url(f.closedPort), '--bundle', join(f.fresh(), 'b.json')],
      ],
    },
    ok: {
      args: (f) => [
        ...[f.artifact, '--predicate-type', 'https://example.com/p', '--predicate', f.predicate],
        ...['--data', f.livePlane, '--bundle', join(f.fresh(), 'b.json')],
      ],
    },
  },
  verify: {
    valid: (f) => [f.artifact, '--bundle', join(f.root, 'signed.sigstore.json')],
    missing: (f) => [f.artifact],
    down: { none: 'verifies offline against a trusted root file' },
    ok: {
      args: (f) => [
        ...[f.artifact, '--bundle', join(f.root, 'signed.sigstore.json'), '--data', f.livePlane],
        ...['--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl],
      ],
    },
  },
  'verify artifact': {
    valid: (f) => [f.artifact, ...['--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl]],
    missing: (f) => ['--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl],
    down: {
      'CA and log not listening (signing a VSA)': (f) => [
        ...[f.artifact, '--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl],
        ...['--bundle', join(f.root, 'signed.sigstore.json'), '--data', f.livePlane],
        ...['--vsa', join(f.fresh(), 'vsa.json'), '--vsa-on-fail', '--verifier-id', 'https://verifier.example/v1'],
        ...['--fulcio-url', url(f.closedPort), '--rekor-url', url(f.closedPort), '--identity-token', f.jwt],
      ],
    },
    ok: { notHere: 'needs a built artifact with provenance: test/verify-policy-cli.test.ts' },
  },
  'verify image': {
    valid: (f) => [
      ...[`127.0.0.1:${f.closedPort}/acme/app:v1`, '--registry-plain-http', '--data', f.livePlane],
      ...['--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl],
    ],
    missing: (f) => ['--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl],
    down: {
      'registry not listening': (f) => [
        ...[`127.0.0.1:${f.closedPort}/acme/app:v1`, '--registry-plain-http', '--data', f.livePlane],
        ...['--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl],
      ],
    },
    ok: { notHere: 'needs a registry holding a signed image: test/verify-policy-image.test.ts' },
  },
  'verify vsa': {
    valid: (f) => [
      ...[f.artifact, '--bundle', join(f.root, 'signed.sigstore.json'), '--policy-digest', `sha256:${'0'.repeat(64)}`],
      ...['--verifier-identity', SPIFFE_CLI, '--verifier-issuer', f.issuerUrl, '--data', f.livePlane],
    ],
    missing: (f) => ['--bundle', join(f.root, 'signed.sigstore.json')],
    down: { none: 'verifies offline against a trusted root file' },
    ok: { notHere: 'needs a signed VSA: test/verify-policy-cli.test.ts' },
  },
  report: {
    valid: (f) => [
      ...[f.artifact, '--html', join(f.fresh(), 'r.html'), '--data', f.livePlane],
      ...['--certificate-identity', SPIFFE_CLI, '--certificate-oidc-issuer', f.issuerUrl],
    ],
    missing: (f) => ['--html', join(f.fresh(), 'r.html')],
    down: { none: 'verifies offline against a trusted root file' },
    ok: { notHere: 'needs a built artifact with provenance: test/report-html.test.ts' },
  },
  sync: {
    valid: (f) => ['--out', join(f.fresh(), 'b.tar')],
    missing: (f) => ['--list', f.listLive],
    down: {
      'no plane in --data': (f) => ['--list', f.listLive, '--data', f.noPlane, '--out', join(f.fresh(), 'b.tar')],
      'stale endpoints.json (before downloading)': (f) => [
        ...['--list', f.listLive, '--data', f.stalePlane, '--out', join(f.fresh(), 'b.tar')],
      ],
      'CA and log not listening (before downloading)': (f) => [
        ...['--list', f.listLive, '--out', join(f.fresh(), 'b.tar'), '--identity-token', f.jwt],
        ...['--fulcio-url', url(f.closedPort), '--rekor-url', url(f.closedPort)],
      ],
      'upstream not listening': (f) => ['--list', f.listDown, '--data', f.livePlane, '--out', join(f.fresh(), 'b.tar')],
    },
    ok: { args: (f) => ['--list', f.listLive, '--data', f.livePlane, '--out', join(f.fresh(), 'b.tar')] },
  },
  'mirror import': {
    valid: (f) => [f.transferBundle, '--store', f.fresh()],
    missing: (f) => ['--store', f.fresh()],
    down: { none: 'verifies the bundle offline against a trusted root file' },
    ok: {
      args: (f) => [
        ...[f.transferBundle, '--store', join(f.fresh(), 'store'), '--create', '--data', f.livePlane],
        ...['--sync-identity', SPIFFE_SYNC, '--sync-issuer', f.issuerUrl],
      ],
    },
  },
  'mirror serve': {
    valid: (f) => ['--store', f.store],
    missing: () => [],
    down: {
      'its port is taken': (f) => ['--store', f.store, '--listen', `127.0.0.1:${f.busyPort}`],
      'object store not listening': (f) => [
        '--store',
        's3://mirror/p',
        '--index',
        f.store,
        '--s3-config',
        f.s3ConfigDown,
      ],
    },
    ok: { args: (f) => ['--store', f.store], serves: true },
  },
  'mirror fsck': {
    valid: (f) => ['--store', f.store],
    missing: () => [],
    down: {
      'object store not listening': (f) => [
        '--store',
        's3://mirror/p',
        '--index',
        f.store,
        '--s3-config',
        f.s3ConfigDown,
      ],
    },
    ok: { args: (f) => ['--store', f.store] },
  },
  'mirror export-snapshot': {
    valid: (f) => [f.fresh(), '--store', f.store],
    missing: (f) => ['--store', f.store],
    down: { none: 'reads the local store only' },
    ok: { args: (f) => [join(f.fresh(), 'snapshot'), '--store', f.store] },
  },
  'mirror export-bazel-cache': {
    valid: (f) => [f.fresh(), '--store', f.store],
    missing: (f) => ['--store', f.store],
    down: { none: 'reads the local store only' },
    ok: { args: (f) => [join(f.fresh(), 'cache'), '--store', f.store] },
  },
  run: {
    valid: (f) => ['--spec', f.spec],
    missing: () => ['--no-sign'],
    down: {
      'mirror not listening': (f) => [
        ...['--spec', f.spec, '--no-sign', '--out', join(f.fresh(), 'out')],
        ...['--mirror', url(f.closedPort)],
      ],
      'mirror socket missing': (f) => [
        ...['--spec', f.spec, '--no-sign', '--out', join(f.fresh(), 'out')],
        ...['--mirror-socket', join(f.fresh(), 'mirror.sock')],
      ],
      'stale endpoints.json': (f) => ['--spec', f.spec, '--data', f.stalePlane, '--out', join(f.fresh(), 'out')],
    },
    ok: { notHere: 'a hermetic build needs bwrap and a git fixture: test/runner-e2e.test.ts checks `run --json`' },
  },
  'admission serve': {
    valid: (f) => [
      ...['--policy', f.admissionPolicy, '--trusted-root', join(f.livePlane, 'trusted_root.json')],
      ...['--tls-cert', f.tls.certFile, '--tls-key', f.tls.keyFile, '--listen', '127.0.0.1:0'],
    ],
    missing: (f) => ['--policy', f.admissionPolicy, '--trusted-root', join(f.livePlane, 'trusted_root.json')],
    down: {
      'its port is taken': (f) => [
        ...['--policy', f.admissionPolicy, '--trusted-root', join(f.livePlane, 'trusted_root.json')],
        ...['--tls-cert', f.tls.certFile, '--tls-key', f.tls.keyFile, '--listen', `127.0.0.1:${f.busyPort}`],
      ],
    },
    ok: {
      args: (f) => [
        ...['--policy', f.admissionPolicy, '--trusted-root', join(f.livePlane, 'trusted_root.json')],
        ...['--tls-cert', f.tls.certFile, '--tls-key', f.tls.keyFile, '--listen', '127.0.0.1:0'],
      ],
      serves: true,
    },
  },
  'admission manifests': {
    valid: () => ['--namespace', 'airlock-system', '--image', 'registry.test/airlock:1'],
    missing: () => ['--namespace', 'airlock-system'],
    down: { none: 'prints manifests' },
    ok: {
      args: (f) => ['--namespace', 'airlock-system', '--image', 'registry.test/airlock:1', '--ca-bundle', f.tls.caFile],
    },
  },
  'admit workspace': {
    valid: (f) => [
      ...['--image', `127.0.0.1:${f.closedPort}/acme/app:v1`, '--policy', f.admissionPolicy],
      ...['--trusted-root', join(f.livePlane, 'trusted_root.json'), '--registry-config', f.registriesDown],
    ],
    missing: (f) => ['--policy', f.admissionPolicy, '--trusted-root', join(f.livePlane, 'trusted_root.json')],
    down: {
      'registry not listening': (f) => [
        ...['--image', `127.0.0.1:${f.closedPort}/acme/app:v1`, '--policy', f.admissionPolicy],
        ...['--trusted-root', join(f.livePlane, 'trusted_root.json'), '--registry-config', f.registriesDown],
      ],
    },
    ok: { notHere: 'needs a registry holding a signed image: test/admission-devcontainer.test.ts' },
  },
  'conformance sign-bundle': {
    valid: (f) => [f.artifact, '--identity-token', f.jwt, '--bundle', join(f.fresh(), 'b.json')],
    missing: (f) => [f.artifact, '--identity-token', f.jwt],
    down: {
      'CA not listening': (f) => [
        ...[f.artifact, '--identity-token', f.jwt, '--bundle', join(f.fresh(), 'b.json')],
        ...['--signing-config', f.signingConfigDown],
      ],
    },
    ok: { notHere: 'sigstore-conformance protocol: the exit status is the result (errors still print JSON)' },
  },
  'conformance verify-bundle': {
    valid: (f) => [f.artifact, '--bundle', join(f.root, 'signed.sigstore.json')],
    missing: (f) => ['--bundle', join(f.root, 'signed.sigstore.json')],
    down: { none: 'verifies offline against a trusted root file' },
    ok: { notHere: 'sigstore-conformance protocol: the exit status is the result (errors still print JSON)' },
  },
};

/** Every command path that runs an action (leaves) and every group that only holds subcommands. */
function commandPaths(): { leaves: string[]; groups: string[] } {
  const leaves: string[] = [];
  const groups: string[] = [];
  const visit = (cmd: Command, path: string[]): void => {
    for (const sub of cmd.commands) {
      const p = [...path, sub.name()];
      // A command may both run an action and hold subcommands (`verify FILE` and `verify artifact FILE`): then it
      // is a leaf and a group. commander keeps the handler in a private field; this test reads it on purpose.
      const hasAction = (sub as unknown as { _actionHandler: unknown })._actionHandler !== null;
      if (sub.commands.length > 0) {
        groups.push(p.join(' '));
        visit(sub, p);
      }
      if (sub.commands.length === 0 || hasAction) leaves.push(p.join(' '));
    }
  };
  visit(buildProgram(), []);
  return { leaves, groups };
}

const { leaves, groups } = commandPaths();

/** Asserts the process printed exactly one JSON object on stdout and exited with `exit`. */
function expectJsonExit(r: CliResult, exit: number, ok: boolean): Record<string, unknown> {
  const context = `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  let parsed: unknown;
  expect(() => (parsed = JSON.parse(r.stdout)), `stdout is one JSON object\n${context}`).not.toThrow();
  expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed), context).toBe(true);
  expect(r.code, context).toBe(exit);
  const json = parsed as Record<string, unknown>;
  if (ok) expect(json.ok ?? true, context).not.toBe(false);
  else
    expect(json, context).toMatchObject({
      ok: false,
      error: { code: expect.any(String), message: expect.any(String) },
    });
  return json;
}

let f: Fixture;
const cleanups: Array<() => Promise<void> | void> = [];

async function freePort(hold: boolean): Promise<{ port: number; server: Server }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  if (!hold) await new Promise<void>((resolve) => server.close(() => resolve()));
  return { port, server };
}

const firstJson = (stdout: string): unknown => {
  try {
    return JSON.parse(stdout);
  } catch {
    return undefined;
  }
};

beforeAll(async () => {
  const root = mkdtempSync(join(tmpdir(), 'airlock-cli-contract-'));
  cleanups.push(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const fresh = (): string => {
    const d = join(root, `d${++n}`);
    mkdirSync(d);
    return d;
  };
  const closedPort = (await freePort(false)).port;
  const busy = await freePort(true);
  cleanups.push(() => new Promise<void>((resolve) => busy.server.close(() => resolve())));

  // A plane started and stopped again leaves its endpoints.json behind.
  const stalePlane = join(root, 'stale-plane');
  await serveOnce(['up', '--data', stalePlane, '--json']);

  const livePlane = join(root, 'live-plane');
  const live = await startCliNow(['up', '--data', livePlane, '--json'], (out) => firstJson(out) !== undefined, 120_000);
  cleanups.push(() => live.stop());
  const endpoints = firstJson(live.stdout()) as { identityIssuerUrl: string; tlogUrl: string };

  // An upstream serving one pinned file, for sync.
  const payload = Buffer.from('pinned file for the CLI contract test\n');
  const upstream: HttpServer = createHttpServer((_req, res) => res.end(payload));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  cleanups.push(() => new Promise<void>((resolve) => upstream.close(() => resolve())));
  const upstreamUrl = url((upstream.address() as AddressInfo).port);

  const file = (name: string, content: string): string => {
    writeFileSync(join(root, name), content);
    return join(root, name);
  };
  const b64 = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  f = {
    root,
    closedPort,
    busyPort: busy.port,
    noPlane: fresh(),
    stalePlane,
    livePlane,
    issuerUrl: endpoints.identityIssuerUrl,
    tlogUrl: endpoints.tlogUrl,
    artifact: file('artifact.txt', 'an artifact\n'),
    predicate: file('predicate.json', '{"note":"contract"}\n'),
    keyPem: file(
      'key.pem',
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    ),
    listLive: file('list-live.json', JSON.stringify([{ url: `${upstreamUrl}/f.txt`, sha256: sha256Hex(payload) }])),
    s3ConfigDown: file(
      's3-down.json',
      JSON.stringify({ endpoint: url(closedPort), accessKeyId: 'AK', secretAccessKey: 'contract-test-secret' }),
    ),
    listDown: file('list-down.json', JSON.stringify([{ url: `${url(closedPort)}/f.txt`, sha256: sha256Hex(payload) }])),
    signingConfigDown: file(
      'signing-config.json',
      JSON.stringify({
        caUrls: [{ url: url(closedPort) }],
        rekorTlogUrls: [{ url: url(closedPort), majorApiVersion: 1 }],
      }),
    ),
    jwt: [
      b64({ alg: 'RS256', typ: 'JWT' }),
      b64({ iss: url(closedPort), sub: SPIFFE_CLI, aud: 'sigstore', iat: now, exp: now + 600 }),
      'c2ln',
    ].join('.'),
    spec: file(
      'spec.json',
      JSON.stringify({
        source: { repo: join(root, 'no-repo'), commit: 'a'.repeat(40) },
        builder: { type: 'command', argv: ['true'] },
        outputs: ['out.txt'],
      }),
    ),
    store: join(root, 'store'),
    transferBundle: join(root, 'transfer.tar'),
    admissionPolicy: file(
      'admission-policy.yaml',
      [
        'apiVersion: airlock.dev/admission-policy/v1',
        'policies:',
        '  - name: runner-built',
        "    images: ['**']",
        '    release:',
        '      inline:',
        '        apiVersion: airlock.dev/policy/v1',
        `        authorities: { runner: { keyless: { subject: '${SPIFFE_CLI}', issuer: '${endpoints.identityIssuerUrl}' } } }`,
        '        provenance: { authorities: [runner] }',
        '',
      ].join('\n'),
    ),
    registriesDown: file('registries.yaml', `registries:\n  '127.0.0.1:${closedPort}': { plainHttp: true }\n`),
    tls: (() => {
      mkdirSync(join(root, 'pki'));
      const pki = makePki(join(root, 'pki'));
      return { certFile: pki.certFile, keyFile: pki.keyFile, caFile: pki.caFile };
    })(),
    fresh,
  };

  // Real material for the commands that read it: a signed bundle, a transfer bundle and a store.
  const setup = async (args: string[]): Promise<void> => {
    const r = await runCli([...args, '--json']);
    if (r.code !== 0) throw new Error(`setup 'airlock ${args.join(' ')}' failed (${r.code}): ${r.stdout}${r.stderr}`);
  };
  await setup(['sign', f.artifact, '--data', livePlane, '--bundle', join(root, 'signed.sigstore.json')]);
  await setup(['sync', '--list', f.listLive, '--data', livePlane, '--out', f.transferBundle]);
  await setup([
    ...['mirror', 'import', f.transferBundle, '--store', f.store, '--create', '--data', livePlane],
    ...['--sync-identity', SPIFFE_SYNC, '--sync-issuer', f.issuerUrl],
  ]);
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('the CLI contract covers every command', () => {
  it('every command buildProgram() registers has an entry in the expectations table, and no entry is stale', () => {
    expect(leaves.length).toBeGreaterThan(10);
    expect(
      leaves.filter((c) => !(c in CONTRACT)),
      'commands without a contract entry',
    ).toEqual([]);
    expect(
      Object.keys(CONTRACT).filter((c) => !leaves.includes(c)),
      'entries for no command',
    ).toEqual([]);
  });

  it('every command shows an example in --help', async () => {
    const missing: string[] = [];
    for (const path of leaves) {
      const r = await runCli([...path.split(' '), '--help']);
      expect(r.code, path).toBe(0);
      if (!/^Example:\n {2}airlock /m.test(r.stdout)) missing.push(path);
    }
    expect(missing, 'commands without an example in --help').toEqual([]);
  });

  it('every example uses only options its command has', () => {
    const program = buildProgram();
    const find = (path: string): Command =>
      path.split(' ').reduce((cmd, name) => cmd.commands.find((c) => c.name() === name)!, program);
    for (const [path, lines] of Object.entries(EXAMPLES)) {
      const known = find(path).options.map((o) => o.long);
      const used = lines.join(' ').match(/(?<=\s)--[a-z][a-z0-9-]*/g) ?? [];
      expect(
        used.filter((u) => !known.includes(u)),
        path,
      ).toEqual([]);
    }
  });

  it('every command has --json and --quiet', () => {
    const program = buildProgram();
    const find = (path: string): Command =>
      path.split(' ').reduce((cmd, name) => cmd.commands.find((c) => c.name() === name)!, program);
    for (const path of leaves) {
      const longs = find(path).options.map((o) => o.long);
      expect(longs, path).toEqual(expect.arrayContaining(['--json', '--quiet']));
    }
  });
});

describe.concurrent.each(leaves)('airlock %s', (path) => {
  const words = path.split(' ');
  const contract = CONTRACT[path];

  it('an unknown flag → exit 2, a JSON usage error naming it', async () => {
    const r = await runCli([...words, ...contract!.valid(f), '--no-such-flag', '--json']);
    const json = expectJsonExit(r, 2, false);
    expect(json.error).toMatchObject({ code: 'USAGE', message: expect.stringContaining('--no-such-flag') });
  });

  it('a missing required argument or option → exit 2, a JSON usage error', async () => {
    const r = await runCli([...words, ...contract!.missing(f), '--json']);
    expect(expectJsonExit(r, 2, false).error).toMatchObject({ code: 'USAGE' });
  });

  const down = contract?.down ?? {};
  if ('none' in down) {
    it(`uses no service (${String(down.none)})`, () => expect(down.none).toBeTruthy());
  } else {
    for (const [scenario, args] of Object.entries(down)) {
      it(`service down: ${scenario} → exit 3, a JSON error`, async () => {
        const r = await runCli([...words, ...args(f), '--json']);
        expectJsonExit(r, 3, false);
      });
    }
  }

  const ok = contract?.ok;
  if (ok && 'args' in ok) {
    it('--json → stdout is the JSON result; progress (if any) stays on stderr', async () => {
      const args = [...words, ...ok.args(f), '--json'];
      if (ok.serves) {
        expect(firstJson(await serveOnce(args))).toBeTypeOf('object');
      } else {
        expectJsonExit(await runCli(args), 0, true);
      }
    });
  } else if (ok) {
    it(`--json result checked elsewhere: ${ok.notHere}`, () => expect(ok.notHere).toBeTruthy());
  }
});

describe.concurrent.each(groups)('airlock %s (a group of commands)', (path) => {
  it('without a subcommand → exit 2, a JSON usage error', async () => {
    // `--json` is not an option of a group, so this is also an unknown flag there.
    const r = await runCli([...path.split(' '), '--json']);
    expectJsonExit(r, 2, false);
  });

  it('an unknown subcommand → exit 2, a JSON usage error', async () => {
    const r = await runCli([...path.split(' '), 'no-such-command', '--json']);
    expectJsonExit(r, 2, false);
  });
});

describe('--json and --quiet', () => {
  it('--json keeps progress on stderr; --quiet silences it; neither changes the exit code', async () => {
    const base = ['sign', f.artifact, '--data', f.livePlane];
    const json = await runCli([...base, '--bundle', join(f.fresh(), 'b.json'), '--json']);
    expectJsonExit(json, 0, true);
    expect(json.stderr).toMatch(/^signing /m);
    const quiet = await runCli([...base, '--bundle', join(f.fresh(), 'b.json'), '--json', '--quiet']);
    expectJsonExit(quiet, 0, true);
    expect(quiet.stderr).toBe('');
    const short = await runCli([...base, '--bundle', join(f.fresh(), 'b.json'), '-q']);
    expect(short.code, short.stderr).toBe(0);
    expect(short.stderr).toBe('');
  });

  it('a usage error without --json prints nothing on stdout, the message on stderr, exit 2', async () => {
    const r = await runCli(['verify', f.artifact, '--bundle', 'x', '--no-such-flag']);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain("unknown option '--no-such-flag'");
  });

  it('--help and --version still exit 0', async () => {
    expect((await runCli(['sign', '--help'])).code).toBe(0);
    expect((await runCli(['--version'])).code).toBe(0);
  });
});

/** `tlog witness` arguments: the live plane's log key (from its trusted root) and a fresh Ed25519 witness key. */
/** witness-serve flags, reusing the key files `witnessArgs` writes. */
function witnessServeArgs(f: Fixture): string[] {
  const a = witnessArgs(f, 'http://127.0.0.1:1');
  const at = (flag: string): string => a[a.indexOf(flag) + 1]!;
  return [
    '--name',
    'witness.example/c',
    '--key',
    at('--key'),
    '--state',
    `${at('--key')}.state.json`,
    '--origin',
    'log.example - 1',
    '--public-key',
    at('--public-key'),
  ];
}

function witnessArgs(f: Fixture, logUrl: string): string[] {
  const dir = f.fresh();
  const root = JSON.parse(readFileSync(join(f.livePlane, 'trusted_root.json'), 'utf8')) as {
    tlogs: Array<{ publicKey: { rawBytes: string } }>;
  };
  const der = Buffer.from(root.tlogs[0]!.publicKey.rawBytes, 'base64');
  writeFileSync(
    join(dir, 'log.pub'),
    `-----BEGIN PUBLIC KEY-----\n${der.toString('base64')}\n-----END PUBLIC KEY-----\n`,
  );
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'w.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return [
    '--url',
    `${logUrl}/api/v2`,
    '--public-key',
    join(dir, 'log.pub'),
    '--log-name',
    '127.0.0.1',
    '--name',
    'witness.example/w1',
    '--key',
    join(dir, 'w.pem'),
    '--state',
    join(dir, 'state.json'),
  ];
}
