import { createPublicKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import { x509SvidToJson, type IdentityIssuer, type X509Svid } from '@airlock/identity';
import { DEFAULT_AGENT_SVID_TTL_SECONDS, matchingEntries, type RegistrationEntry } from './entries.js';
import { AgentError } from './errors.js';
import { peerNative } from './native.js';
import { attestWith, type NodeAttestation, type NodeAttestationResult } from './node-attestation.js';
import { inspectPeer, pinPeer, unpin, type InspectHook, type PeerIdentity, type PinnedPeer } from './peer.js';
import { MAX_REQUEST_BYTES, type AgentResponse, type AgentTokenRequest } from './protocol.js';

/** The issuer's signing path the agent uses: it runs as the plane's user and holds the issuer key in-process. */
export type AgentTokenSigner = Pick<IdentityIssuer, 'issueToken' | 'trustDomain' | 'issuerUrl'>;

/**
 * The SPIFFE X.509 CA the agent issues SVIDs with (e.g. `issueX509Svid` of @airlock/ca over the plane's SPIFFE CA).
 * Without a public key the signer generates the key pair and returns its PKCS#8 DER in `x509_svid_key`.
 */
export type AgentSvidSigner = (request: {
  spiffeId: string;
  ttlSeconds: number;
  publicKeyPem?: string;
}) => Promise<X509Svid>;

/** One audit record per request: issuance or refusal. Never contains the token. */
export interface AgentLogRecord {
  time: string;
  event: 'issued' | 'refused' | 'node-attested' | 'listening';
  /** What was asked for or issued: a JWT (`token`) or an X.509 SVID. */
  kind?: 'token' | 'x509-svid';
  /** x509-svid: the certificate's serial number (hex). */
  serial?: string;
  pid?: number;
  uid?: number;
  gid?: number;
  exe?: string;
  exeSha256?: string;
  cgroup?: string;
  pinnedBy?: string;
  /** The caller's kernel-derived selectors (refusals) or the matched entry's selectors (issuance). */
  selectors?: string[];
  spiffeId?: string;
  jti?: string;
  expiresAt?: string;
  node?: { nodeId: string; referenceValueSetId: string; claimsJson?: string };
  /** The invocation a build quote was made for (the quote itself is in the answer, not the log). */
  buildQuoteFor?: string;
  socket?: string;
  error?: { code: string; message: string };
}

export interface StartAgentOptions {
  socketPath: string;
  entries: RegistrationEntry[];
  signer: AgentTokenSigner;
  /** Enables `kind: "x509-svid"` requests; without it they are refused. */
  svidSigner?: AgentSvidSigner;
  /** Audit sink (default: one JSON line per record on stderr). */
  log?: (record: AgentLogRecord) => void;
  /** When set, the host must prove itself before the socket is opened (issue 10 §4 seam). */
  nodeAttestation?: NodeAttestation;
  /** Socket file mode (default 0666: anyone may ask; the kernel's answer about who asked decides). */
  socketMode?: number;
  /** How long a caller may take to send its request line (default 5 s). */
  requestTimeoutMs?: number;
  /** `pidfd_open` pins at accept even where SO_PEERPIDFD exists (tests of the pre-6.5 kernel path). */
  pinWith?: 'auto' | 'pidfd_open';
  /** Test seams: after the peer is pinned, and between reading its /proc facts and re-checking them. */
  hooks?: { afterPin?: (pid: number) => Promise<void>; afterRead?: InspectHook };
}

export interface RunningAgent {
  socketPath: string;
  node?: NodeAttestationResult;
  close(): Promise<void>;
}

/**
 * Starts the workload attestation agent: a UNIX socket that answers each caller with a short-lived token for the
 * SPIFFE ID its kernel-verified facts (uid, gid, executable path and digest, cgroup) are registered for, or a
 * refusal naming those facts. Stateless per connection, so a crash or restart can never hand one caller's
 * answer to another.
 */
export async function startAgent(options: StartAgentOptions): Promise<RunningAgent> {
  peerNative(); // fail at start, not on the first caller, when the addon is missing
  const log = options.log ?? ((r: AgentLogRecord) => process.stderr.write(`${JSON.stringify(r)}\n`));
  const node = options.nodeAttestation ? await attestNode(options.nodeAttestation) : undefined;
  if (node) log({ time: now(), event: 'node-attested', node });
  await removeStaleSocket(options.socketPath);
  const server = net.createServer((socket) => {
    void serveConnection(socket, { ...options, log, ...(node ? { node } : {}) });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  fs.chmodSync(options.socketPath, options.socketMode ?? 0o666);
  log({ time: now(), event: 'listening', socket: options.socketPath });
  return {
    socketPath: options.socketPath,
    ...(node ? { node } : {}),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

async function attestNode(na: NodeAttestation): Promise<NodeAttestationResult> {
  try {
    return await attestWith(na);
  } catch (err) {
    throw new AgentError(
      'AGENT_NODE_ATTESTATION_FAILED',
      `node attestation failed, the agent serves no workload: ${(err as Error).message}`,
      { cause: err },
    );
  }
}

/** A socket file left by a crashed agent is replaced; a live agent on the path is not. */
async function removeStaleSocket(path: string): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) {
    throw new AgentError('AGENT_CONFIG_INVALID', `${path} exists and is not a socket; refusing to replace it`);
  }
  const live = await new Promise<boolean>((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new AgentError('AGENT_CONFIG_INVALID', `an agent is already listening on ${path}`);
  fs.unlinkSync(path);
}

interface ConnectionContext extends StartAgentOptions {
  log: (record: AgentLogRecord) => void;
  node?: NodeAttestationResult;
}

async function serveConnection(socket: net.Socket, ctx: ConnectionContext): Promise<void> {
  socket.on('error', () => undefined); // a caller that vanished must not crash the agent
  let peer: PinnedPeer | undefined;
  let identity: PeerIdentity | undefined;
  let kind: AgentLogRecord['kind'];
  try {
    peer = pinPeer(socket, ctx.pinWith);
    if (ctx.hooks?.afterPin) await ctx.hooks.afterPin(peer.pid);
    const request = await readRequest(socket, ctx.requestTimeoutMs ?? 5_000);
    kind = request.kind ?? 'token';
    identity = await inspectPeer(peer, ctx.hooks?.afterRead);
    const entry = chooseEntry(ctx.entries, identity, request);
    const response =
      kind === 'x509-svid'
        ? await issueSvid(ctx, identity, entry, request)
        : await issueToken(ctx, identity, entry, request);
    respond(socket, response);
  } catch (err) {
    const error = {
      code: err instanceof AgentError ? err.code : String((err as { code?: unknown }).code ?? 'AGENT_INTERNAL'),
      message: err instanceof Error ? err.message : String(err),
    };
    ctx.log({
      time: now(),
      event: 'refused',
      ...(kind ? { kind } : {}),
      ...(identity ? { ...facts(identity), selectors: identity.selectors } : peerFacts(peer)),
      error,
    });
    respond(socket, { ok: false, error });
  } finally {
    if (peer) unpin(peer);
  }
}

async function issueToken(
  ctx: ConnectionContext,
  identity: PeerIdentity,
  entry: RegistrationEntry,
  request: AgentTokenRequest,
): Promise<AgentResponse> {
  const token = await ctx.signer.issueToken({
    subject: entry.spiffeId,
    ttlSeconds: Math.min(entry.ttlSeconds, request.ttlSeconds ?? entry.ttlSeconds),
    ...(request.audience !== undefined ? { audience: request.audience } : {}),
    // The attested node's claims ride in every token; the CA copies them (this issuer is trusted for them).
    ...(ctx.node ? { nodeAttestation: ctx.node.claimsJson } : {}),
  });
  const buildQuote = request.buildQuote ? await quoteForBuild(ctx, request.buildQuote) : undefined;
  const claims = payloadOf(token);
  const expiresAt = new Date(claims.exp * 1000).toISOString();
  ctx.log({
    time: now(),
    event: 'issued',
    kind: 'token',
    ...facts(identity),
    selectors: entry.selectors,
    spiffeId: entry.spiffeId,
    jti: claims.jti,
    expiresAt,
    ...(ctx.node ? { node: { nodeId: ctx.node.nodeId, referenceValueSetId: ctx.node.referenceValueSetId } } : {}),
    ...(buildQuote !== undefined ? { buildQuoteFor: request.buildQuote!.invocationId } : {}),
  });
  return { ok: true, token, spiffeId: entry.spiffeId, expiresAt, ...(buildQuote ? { buildQuote } : {}) };
}

/** An agent whose node is not attested answers without a quote: the caller names it an unattested runner. */
async function quoteForBuild(
  ctx: ConnectionContext,
  build: NonNullable<AgentTokenRequest['buildQuote']>,
): Promise<unknown> {
  if (!ctx.node || !ctx.nodeAttestation?.buildQuote) return undefined;
  return ctx.nodeAttestation.buildQuote(build);
}

/** An X.509 SVID for the matched entry, answered as the Workload API's X509SVIDResponse (one SVID). */
async function issueSvid(
  ctx: ConnectionContext,
  identity: PeerIdentity,
  entry: RegistrationEntry,
  request: AgentTokenRequest,
): Promise<AgentResponse> {
  if (!ctx.svidSigner)
    throw new AgentError('AGENT_REQUEST_INVALID', 'this agent has no SPIFFE CA: it issues no X.509 SVIDs');
  const max = entry.svidTtlSeconds ?? DEFAULT_AGENT_SVID_TTL_SECONDS;
  const svid = await ctx.svidSigner({
    spiffeId: entry.spiffeId,
    ttlSeconds: Math.min(max, request.ttlSeconds ?? max),
    ...(request.publicKeyPem !== undefined ? { publicKeyPem: request.publicKeyPem } : {}),
  });
  const expiresAt = new Date(svid.expires_at * 1000).toISOString();
  ctx.log({
    time: now(),
    event: 'issued',
    kind: 'x509-svid',
    ...facts(identity),
    selectors: entry.selectors,
    spiffeId: svid.spiffe_id,
    serial: new X509Certificate(svid.x509_svid).serialNumber,
    expiresAt,
  });
  return { ok: true, kind: 'x509-svid', spiffeId: svid.spiffe_id, expiresAt, svids: [x509SvidToJson(svid)] };
}

function facts(id: PeerIdentity): Partial<AgentLogRecord> {
  return {
    pid: id.pid,
    uid: id.uid,
    gid: id.gid,
    exe: id.exePath,
    exeSha256: id.exeSha256,
    cgroup: id.cgroup,
    pinnedBy: id.pinnedBy,
  };
}

function peerFacts(peer: PinnedPeer | undefined): Partial<AgentLogRecord> {
  return peer ? { pid: peer.pid, uid: peer.uid, gid: peer.gid, pinnedBy: peer.pinnedBy } : {};
}

/** The entry to issue for: every selector must match; a subject picks among several matching IDs. */
function chooseEntry(
  entries: readonly RegistrationEntry[],
  id: PeerIdentity,
  request: AgentTokenRequest,
): RegistrationEntry {
  const who =
    `caller uid ${id.uid} gid ${id.gid} pid ${id.pid} exe ${id.exePath} (sha256:${id.exeSha256})` +
    (id.cgroup ? ` cgroup ${id.cgroup}` : '');
  const matched = matchingEntries(entries, id.selectors);
  if (matched.length === 0) throw new AgentError('AGENT_NO_MATCH', `${who} matches no registration entry`);
  const ids = [...new Set(matched.map((e) => e.spiffeId))];
  let entry: RegistrationEntry | undefined;
  if (request.subject !== undefined) {
    entry = matched.find((e) => e.spiffeId === request.subject);
    if (!entry) throw new AgentError('AGENT_NO_MATCH', `${who} is not registered for ${request.subject}`);
  } else if (ids.length > 1) {
    throw new AgentError('AGENT_REQUEST_INVALID', `${who} is registered for several identities: ask for one (subject)`);
  } else {
    entry = matched[0]!;
  }
  return entry;
}

function readRequest(socket: net.Socket, timeoutMs: number): Promise<AgentTokenRequest> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err: Error | undefined, req?: AgentTokenRequest): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      if (err) reject(err);
      else resolve(req!);
    };
    const timer = setTimeout(
      () => done(new AgentError('AGENT_REQUEST_INVALID', `no request line within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0 && buf.length > MAX_REQUEST_BYTES) {
        done(new AgentError('AGENT_REQUEST_INVALID', `request line longer than ${MAX_REQUEST_BYTES} bytes`));
      } else if (nl >= 0) {
        try {
          done(undefined, parseRequest(buf.subarray(0, nl).toString('utf8')));
        } catch (err) {
          done(err as Error);
        }
      }
    };
    const onEnd = (): void => done(new AgentError('AGENT_REQUEST_INVALID', 'connection closed before a request line'));
    socket.on('data', onData);
    socket.on('end', onEnd);
  });
}

function parseRequest(line: string): AgentTokenRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new AgentError('AGENT_REQUEST_INVALID', 'the request line is not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new AgentError('AGENT_REQUEST_INVALID', 'the request must be a JSON object');
  }
  const r = v as Record<string, unknown>;
  const extra = Object.keys(r).filter(
    (k) => !['subject', 'audience', 'ttlSeconds', 'kind', 'publicKeyPem', 'buildQuote'].includes(k),
  );
  if (extra.length > 0) throw new AgentError('AGENT_REQUEST_INVALID', `unknown request field(s) ${extra.join(', ')}`);
  if (r.subject !== undefined && typeof r.subject !== 'string')
    throw new AgentError('AGENT_REQUEST_INVALID', 'subject must be a string');
  if (r.audience !== undefined && typeof r.audience !== 'string')
    throw new AgentError('AGENT_REQUEST_INVALID', 'audience must be a string');
  if (r.ttlSeconds !== undefined && (!Number.isSafeInteger(r.ttlSeconds) || (r.ttlSeconds as number) < 1))
    throw new AgentError('AGENT_REQUEST_INVALID', 'ttlSeconds must be a positive integer');
  if (r.kind !== undefined && r.kind !== 'token' && r.kind !== 'x509-svid')
    throw new AgentError('AGENT_REQUEST_INVALID', 'kind must be "token" or "x509-svid"');
  if (r.publicKeyPem !== undefined) checkPublicKeyPem(r.publicKeyPem, r.kind);
  if (r.buildQuote !== undefined) checkBuildQuoteRequest(r.buildQuote, r.kind);
  return r as AgentTokenRequest;
}

function checkBuildQuoteRequest(b: unknown, kind: unknown): void {
  if (kind === 'x509-svid') throw new AgentError('AGENT_REQUEST_INVALID', 'buildQuote goes with a token request');
  const o = (typeof b === 'object' && b !== null ? b : {}) as Record<string, unknown>;
  const ok =
    Object.keys(o).length === 2 &&
    typeof o.invocationId === 'string' &&
    /^[A-Za-z0-9._:-]{1,128}$/.test(o.invocationId) &&
    typeof o.specDigest === 'string' &&
    /^[0-9a-f]{64}$/.test(o.specDigest);
  if (!ok)
    throw new AgentError(
      'AGENT_REQUEST_INVALID',
      'buildQuote must be { invocationId (1-128 of [A-Za-z0-9._:-]), specDigest (64 hex) }',
    );
}

/** A workload's own SVID key: a PEM public key only (a private key sent here would already be exposed). */
function checkPublicKeyPem(pem: unknown, kind: unknown): void {
  if (kind !== 'x509-svid') throw new AgentError('AGENT_REQUEST_INVALID', 'publicKeyPem goes with kind "x509-svid"');
  if (typeof pem !== 'string' || !pem.trimStart().startsWith('-----BEGIN PUBLIC KEY-----'))
    throw new AgentError('AGENT_REQUEST_INVALID', 'publicKeyPem must be a PEM public key (SPKI)');
  try {
    createPublicKey(pem);
  } catch {
    throw new AgentError('AGENT_REQUEST_INVALID', 'publicKeyPem is not a readable public key');
  }
}

function respond(socket: net.Socket, response: AgentResponse): void {
  if (socket.destroyed || !socket.writable) return;
  socket.end(`${JSON.stringify(response)}\n`);
}

function payloadOf(token: string): { exp: number; jti: string } {
  const part = token.split('.')[1] ?? '';
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as { exp: number; jti: string };
}

function now(): string {
  return new Date().toISOString();
}
