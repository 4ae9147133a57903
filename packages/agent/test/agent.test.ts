/**
 * Issue 10 §2: the workload attestation agent against real processes. Callers are real node/python processes
 * (as other uids where the test runs as root); the agent identifies them from the kernel (SO_PEERCRED, pidfd,
 * /proc) and must not be fooled by another uid, another executable, an exec after connect (before or during
 * inspection) or a reused pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IdentityIssuer, verifyOidcToken } from '@airlock/identity';
import {
  loadEntries,
  startAgent,
  type AgentLogRecord,
  type RegistrationEntry,
  type RunningAgent,
  type StartAgentOptions,
} from '@airlock/agent';

const TD = 'airlock.internal';
const RUNNER = `spiffe://${TD}/airlock/runner`;
const SYNC = `spiffe://${TD}/airlock/mirror-sync`;
const NODE = fs.realpathSync(process.execPath);
const PYTHON = fs.existsSync('/usr/bin/python3') ? fs.realpathSync('/usr/bin/python3') : undefined;
const SLEEP = fs.realpathSync('/usr/bin/sleep');
const isRoot = process.getuid?.() === 0;
const sha256File = (f: string): string => createHash('sha256').update(fs.readFileSync(f)).digest('hex');

let dir: string;
let signer: IdentityIssuer;
const children: ChildProcess[] = [];
let agent: RunningAgent | undefined;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(tmpdir(), 'airlock-agent-'));
  fs.chmodSync(dir, 0o755); // callers run as other uids and must reach the socket
  signer = await IdentityIssuer.open({
    dataDir: path.join(dir, 'plane'),
    issuerUrl: 'http://127.0.0.1:9',
    trustDomain: TD,
  });
});
afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await agent?.close();
  agent = undefined;
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

async function start(
  entries: RegistrationEntry[],
  extra: Partial<StartAgentOptions> = {},
): Promise<{ socket: string; log: AgentLogRecord[] }> {
  const log: AgentLogRecord[] = [];
  const socket = path.join(dir, `agent-${randomBytes(4).toString('hex')}.sock`);
  agent = await startAgent({ socketPath: socket, entries, signer, log: (r) => log.push(r), ...extra });
  return { socket, log };
}

const startAgentWith = start;
const entry = (spiffeId: string, selectors: string[]): RegistrationEntry => ({ spiffeId, selectors, ttlSeconds: 300 });

interface Answer {
  ok: boolean;
  token?: string;
  spiffeId?: string;
  error?: { code: string; message: string };
}

/** A caller process that connects, sends one request line and prints the agent's answer (raw, no library). */
const NODE_CLIENT = `
const c = require('node:net').connect(process.argv[1]);
let out = '';
c.on('connect', () => c.write(process.argv[2] + '\\n'));
c.on('data', (d) => (out += d));
c.on('close', () => process.stdout.write(out || 'EOF'));
c.on('error', (e) => process.stdout.write('ERROR ' + e.message));
`;

/** python caller: plain (print the answer), exec (wait for SIGUSR1, then exec sleep) or fork (a child keeps the
 * connection and prints the answer; the parent waits to be killed). */
const PY_CLIENT = `
import os, signal, socket, sys
path, mode, req = sys.argv[1], sys.argv[2], sys.argv[3]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.sendall((req + '\\n').encode())
def read_all():
    data = b''
    while True:
        b = s.recv(65536)
        if not b: return data
        data += b
if mode == 'plain':
    sys.stdout.write(read_all().decode() or 'EOF'); sys.stdout.flush(); sys.exit(0)
if mode == 'fork' and os.fork() == 0:
    sys.stdout.write(read_all().decode() or 'EOF'); sys.stdout.flush(); os._exit(0)
print('sent', flush=True)
signal.sigwait([signal.SIGUSR1])
if mode == 'exec':
    os.execv('${SLEEP}', ['sleep', '30'])
`;

interface Caller {
  child: ChildProcess;
  pid: number;
  sent: Promise<void>;
  /** Everything printed on stdout once every holder of the pipe closed it. */
  output: Promise<string>;
}

function caller(cmd: string, args: string[], ids: { uid?: number; gid?: number } = {}): Caller {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], ...ids });
  children.push(child);
  let out = '';
  let sentResolve: () => void = () => undefined;
  const sent = new Promise<void>((r) => (sentResolve = r));
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.startsWith('sent\n')) sentResolve();
  });
  const output = new Promise<string>((resolve) => child.stdout!.on('close', () => resolve(out.replace(/^sent\n/, ''))));
  return { child, pid: child.pid!, sent, output };
}

const nodeCaller = (socket: string, req: object, ids?: { uid: number; gid: number }): Caller =>
  caller(NODE, ['-e', NODE_CLIENT, socket, JSON.stringify(req)], ids);
const pyCaller = (
  socket: string,
  mode: 'plain' | 'exec' | 'fork',
  req: object = {},
  ids?: { uid: number; gid: number },
): Caller => caller(PYTHON!, ['-c', PY_CLIENT, socket, mode, JSON.stringify(req)], ids);

async function answer(c: Caller): Promise<Answer> {
  const text = await c.output;
  return JSON.parse(text) as Answer;
}

/** Waits (no deadline of its own: the test timeout bounds it) until /proc/<pid>/exe names `exe`. */
async function untilExe(pid: number, exe: string): Promise<void> {
  while (fs.readlinkSync(`/proc/${pid}/exe`) !== exe) await new Promise((r) => setTimeout(r, 5));
}

async function verified(token: string): Promise<{ sub: string; ttl: number }> {
  const v = await verifyOidcToken(token, {
    issuers: [
      { issuerUrl: signer.issuerUrl, type: 'spiffe', trustDomain: TD, jwks: signer.jwks(), allowInsecureHttp: true },
    ],
  });
  const c = v.claims as { exp: number; iat: number };
  return { sub: v.subject, ttl: c.exp - c.iat };
}

describe('forged identities', () => {
  it.skipIf(!isRoot)(
    'issues the runner identity only to the registered uid + executable, refusing look-alikes by name',
    async () => {
      const nodeDigest = sha256File(NODE);
      const { socket, log } = await start([
        entry(RUNNER, ['unix:uid:1500', `unix:path:${NODE}`, `unix:sha256:${nodeDigest}`]),
      ]);

      const runner = await answer(nodeCaller(socket, { subject: RUNNER }, { uid: 1500, gid: 1500 }));
      expect(runner.ok, JSON.stringify(runner)).toBe(true);
      expect(runner.spiffeId).toBe(RUNNER);
      const v = await verified(runner.token!);
      expect(v.sub).toBe(RUNNER);
      expect(v.ttl).toBeLessThanOrEqual(300);

      // Same executable, another uid: refused, and the refusal names uid, pid and digest.
      const otherUid = nodeCaller(socket, { subject: RUNNER }, { uid: 1501, gid: 1501 });
      const refusedUid = await answer(otherUid);
      expect(refusedUid.ok).toBe(false);
      expect(refusedUid.error!.code).toBe('AGENT_NO_MATCH');
      expect(refusedUid.error!.message).toContain('uid 1501');
      expect(refusedUid.error!.message).toContain(`pid ${otherUid.pid}`);
      expect(refusedUid.error!.message).toContain(`sha256:${nodeDigest}`);

      // The registered uid, another executable: refused naming that executable's digest.
      if (PYTHON) {
        const py = pyCaller(socket, 'plain', { subject: RUNNER }, { uid: 1500, gid: 1500 });
        const refusedExe = await answer(py);
        expect(refusedExe.error?.code).toBe('AGENT_NO_MATCH');
        expect(refusedExe.error!.message).toContain(`sha256:${sha256File(PYTHON)}`);
      }

      // Every decision is in the audit log; the token never is.
      const issued = log.filter((r) => r.event === 'issued');
      expect(issued).toHaveLength(1);
      expect(issued[0]).toMatchObject({ uid: 1500, exe: NODE, exeSha256: nodeDigest, spiffeId: RUNNER });
      expect(issued[0]!.selectors).toContain('unix:uid:1500');
      expect(log.filter((r) => r.event === 'refused').map((r) => r.uid)).toEqual(PYTHON ? [1501, 1500] : [1501]);
      expect(JSON.stringify(log)).not.toContain(runner.token!);
    },
  );

  it('refuses a subject the caller is not registered for, and picks among several only on request', async () => {
    const me = [`unix:uid:${process.getuid!()}`, `unix:path:${NODE}`];
    const { socket } = await start([
      entry(RUNNER, me),
      entry(SYNC, me),
      entry(`spiffe://${TD}/other`, ['unix:uid:4242']),
    ]);
    const ambiguous = await answer(nodeCaller(socket, {}));
    expect(ambiguous.error?.code).toBe('AGENT_REQUEST_INVALID');
    const sync = await answer(nodeCaller(socket, { subject: SYNC, ttlSeconds: 60 }));
    expect(sync.spiffeId).toBe(SYNC);
    expect((await verified(sync.token!)).ttl).toBe(60);
    const other = await answer(nodeCaller(socket, { subject: `spiffe://${TD}/other` }));
    expect(other.error?.code).toBe('AGENT_NO_MATCH');
    expect(other.error!.message).toContain(`is not registered for spiffe://${TD}/other`);
  });
});

describe.skipIf(!PYTHON).each(['auto', 'pidfd_open'] as const)(
  'the caller is pinned (%s): exec after connect and pid reuse',
  (pinWith) => {
    const start = (entries: RegistrationEntry[], extra: Partial<StartAgentOptions> = {}) =>
      startAgentWith(entries, { pinWith, ...extra });
    const pyRunner = (): RegistrationEntry[] => [
      entry(RUNNER, [`unix:uid:${process.getuid!()}`, `unix:path:${PYTHON}`]),
    ];

    it('a registered caller that execs another program after connecting is judged as that program', async () => {
      let c: Caller | undefined = undefined;
      const { socket, log } = await start(pyRunner(), {
        hooks: {
          afterPin: async () => {
            await c!.sent;
            c!.child.kill('SIGUSR1');
            await untilExe(c!.pid, SLEEP);
          },
        },
      });
      c = pyCaller(socket, 'exec');
      await c.sent;
      await new Promise<void>((resolve) => {
        const check = (): void => void (log.some((r) => r.event !== 'listening') ? resolve() : setTimeout(check, 5));
        check();
      });
      const decision = log.find((r) => r.event !== 'listening')!;
      expect(decision.event).toBe('refused');
      expect(decision.exe).toBe(SLEEP);
      expect(decision.error!.code).toBe('AGENT_NO_MATCH');
    });

    it('an exec while the agent reads the executable is detected by the re-check (AGENT_PEER_CHANGED)', async () => {
      let c: Caller | undefined = undefined;
      const { socket, log } = await start(pyRunner(), {
        hooks: {
          afterRead: async () => {
            c!.child.kill('SIGUSR1');
            await untilExe(c!.pid, SLEEP);
          },
        },
      });
      c = pyCaller(socket, 'exec');
      await c.sent;
      await new Promise<void>((resolve) => {
        const check = (): void => void (log.some((r) => r.event !== 'listening') ? resolve() : setTimeout(check, 5));
        check();
      });
      const decision = log.find((r) => r.event !== 'listening')!;
      expect(decision.event, JSON.stringify(decision)).toBe('refused');
      expect(decision.error!.code).toBe('AGENT_PEER_CHANGED');
      expect(decision.error!.message).toContain(`${PYTHON} → ${SLEEP}`);
    });

    it.skipIf(!isRoot)('a reused pid never inherits the identity of the process now holding it', async (ctx) => {
      // Registered: sleep. The caller is an unregistered python that dies after connecting; its pid is then handed
      // to a registered sleep (ns_last_pid), while a forked child still holds the connection and reads the answer.
      const entries = [entry(RUNNER, [`unix:uid:${process.getuid!()}`, `unix:path:${SLEEP}`])];
      let c: Caller | undefined = undefined;
      let reused: ChildProcess | undefined;
      const { socket, log } = await start(entries, {
        hooks: {
          afterPin: async (pid) => {
            await c!.sent;
            const exited = new Promise((r) => c!.child.once('exit', r));
            c!.child.kill('SIGKILL');
            await exited;
            reused = reusePid(pid);
            if (reused) await untilExe(pid, SLEEP);
          },
        },
      });
      c = pyCaller(socket, 'fork');
      const refused = await answer(c);
      if (!reused) ctx.skip(); // another process on this machine took the pid first every time
      expect(refused.ok).toBe(false);
      expect(refused.error!.code).toBe('AGENT_PEER_CHANGED');
      expect(log.some((r) => r.event === 'issued')).toBe(false);
      expect(fs.readlinkSync(`/proc/${c.pid}/exe`)).toBe(SLEEP); // the pid now really is a registered program
    });
  },
);

/** Makes the next fork get `pid` (root, via ns_last_pid); undefined when other processes keep winning the race. */
function reusePid(pid: number): ChildProcess | undefined {
  for (let i = 0; i < 200; i++) {
    fs.writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
    const child = spawn(SLEEP, ['30'], { stdio: 'ignore' });
    children.push(child);
    if (child.pid === pid) return child;
    child.kill('SIGKILL');
  }
  return undefined;
}

describe('node attestation seam and configuration', () => {
  const key = randomBytes(32);
  const CLAIMS_JSON = '{"referenceValues":{"id":"test"}}';
  /** A challenge-response node attestation with an HMAC key standing in for the TPM: same four-call shape. */
  const attestationWith = (verifierKey: Buffer) => {
    let issued: string | undefined;
    return {
      attestor: {
        identity: async () => 'node-1',
        attest: async (challenge: string) => createHmac('sha256', key).update(challenge).digest('hex'),
      },
      challenge: (identity: string) => (issued = `${identity}:${randomBytes(16).toString('hex')}`),
      verify: (evidence: string) => {
        if (issued === undefined || evidence !== createHmac('sha256', verifierKey).update(issued).digest('hex'))
          throw new Error('evidence does not verify');
        issued = undefined; // single use: a replay fails
        return { nodeId: 'node-1', referenceValueSetId: 'test', claimsJson: CLAIMS_JSON };
      },
    };
  };

  it('serves only after the host proved itself, and records the node with every issuance', async () => {
    const me = [`unix:uid:${process.getuid!()}`, `unix:path:${NODE}`];
    await expect(
      start([entry(RUNNER, me)], { nodeAttestation: attestationWith(randomBytes(32)) }),
    ).rejects.toMatchObject({
      code: 'AGENT_NODE_ATTESTATION_FAILED',
      message: expect.stringContaining('evidence does not verify'),
    });
    const { socket, log } = await start([entry(RUNNER, me)], { nodeAttestation: attestationWith(key) });
    const got = await answer(nodeCaller(socket, {}));
    expect(got.spiffeId).toBe(RUNNER);
    // The attested claims ride in the token (the CA copies them into the certificate).
    const payload = JSON.parse(Buffer.from(String(got.token).split('.')[1]!, 'base64url').toString('utf8'));
    expect(payload.airlock_node_attestation).toBe(CLAIMS_JSON);
    expect(log.find((r) => r.event === 'issued')!.node).toEqual({ nodeId: 'node-1', referenceValueSetId: 'test' });
  });

  it('rejects malformed entries files naming the problem', () => {
    const write = (v: unknown): string => {
      const f = path.join(dir, `entries-${randomBytes(4).toString('hex')}.json`);
      fs.writeFileSync(f, JSON.stringify(v));
      return f;
    };
    const bad: Array<[unknown, string]> = [
      [{ entries: [] }, 'at least one entry'],
      [{ entries: [{ spiffeId: RUNNER, selectors: [] }] }, 'non-empty'],
      [{ entries: [{ spiffeId: RUNNER, selectors: ['unix:uid:abc'] }] }, 'unix:uid:abc'],
      [{ entries: [{ spiffeId: RUNNER, selectors: ['k8s:ns:x'] }] }, 'k8s:ns:x'],
      [{ entries: [{ spiffeId: 'spiffe://other.domain/x', selectors: ['unix:uid:1'] }] }, 'other.domain'],
      [{ entries: [{ spiffeId: RUNNER, selectors: ['unix:uid:1'], ttlSeconds: 3600 }] }, '1..300'],
    ];
    for (const [v, msg] of bad) {
      expect(() => loadEntries(write(v), TD)).toThrow(
        expect.objectContaining({ code: 'AGENT_ENTRIES_INVALID', message: expect.stringContaining(msg) }),
      );
    }
    expect(
      loadEntries(
        write({ entries: [{ spiffeId: RUNNER, selectors: ['cgroup:/system.slice/airlock-runner.service'] }] }),
        TD,
      ),
    ).toHaveLength(1);
  });
});
