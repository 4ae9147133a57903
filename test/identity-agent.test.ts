/**
 * Issue 10 acceptance for the workload attestation agent through the CLI: `airlock identity agent` in front of a
 * real `airlock up`; `airlock sign --agent-socket` gets the runner identity only for the registered workload;
 * a kill -9 of the agent in the middle of a burst of requests, then a restart on the same socket, never yields a
 * token for the wrong workload.
 */
import { spawn } from 'node:child_process';
import {
  chownSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, REPO_ROOT, runCli, startCli } from './helpers/cli.js';

const TD = 'airlock.internal';
const RUNNER = `spiffe://${TD}/airlock/runner`;
const NODE = realpathSync(process.execPath);
const isRoot = process.getuid?.() === 0;

let root: string;
let plane: string;
let endpoints: { caUrl: string; tlogUrl: string; identityIssuerUrl: string };
let entries: string;
let up: Awaited<ReturnType<typeof startCli>> | undefined;
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-agent-cli-'));
  chmodSync(root, 0o755);
  plane = join(root, 'plane');
  up = await startCli(['up', '--data', plane, '--json'], (o) => o.includes('"tlogUrl"') && o.trim().endsWith('}'));
  endpoints = JSON.parse(readFileSync(join(plane, 'endpoints.json'), 'utf8')) as typeof endpoints;
  entries = join(root, 'entries.json');
  // The registered runner: uid 1500 running this node binary. Nobody else.
  writeFileSync(
    entries,
    JSON.stringify({ entries: [{ spiffeId: RUNNER, selectors: ['unix:uid:1500', `unix:path:${NODE}`] }] }),
  );
});
afterAll(async () => {
  for (const s of stops.splice(0)) await s();
  await up?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function startAgentCli(socket: string, audit: string): Promise<Awaited<ReturnType<typeof startCli>>> {
  const a = await startCli(
    ['identity', 'agent', '--socket', socket, '--entries', entries, '--data', plane, '--audit-log', audit, '--json'],
    (o) => o.trim().endsWith('}'),
  );
  stops.push(a.stop);
  return a;
}

interface Answer {
  ok?: boolean;
  spiffeId?: string;
  token?: string;
  error?: { code: string; message: string };
}

/** A raw caller as `uid`: prints the agent's JSON answer, or EOF/ERROR when the agent died before answering. */
function ask(socket: string, uid: number): Promise<{ uid: number; text: string }> {
  const script = `
    const c = require('node:net').connect(process.argv[1]);
    let out = '';
    c.on('connect', () => c.write(JSON.stringify({ subject: '${RUNNER}' }) + '\\n'));
    c.on('data', (d) => (out += d));
    c.on('close', () => process.stdout.write(out || 'EOF'));
    c.on('error', (e) => { out = ''; process.stdout.write('ERROR ' + e.code); c.destroy(); });`;
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, ['-e', script, socket], { uid, gid: uid, stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', () => resolve({ uid, text }));
  });
}

const parse = (text: string): Answer | undefined => (text.startsWith('{') ? (JSON.parse(text) as Answer) : undefined);
const subOf = (token: string): string =>
  (JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { sub: string }).sub;
const auditLines = (file: string): Array<{ event: string; uid?: number; spiffeId?: string }> => {
  try {
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { event: string });
  } catch {
    return [];
  }
};

describe.skipIf(!isRoot)('airlock identity agent', () => {
  it(
    'kill -9 during a burst of requests, restart on the same socket: never a token for the wrong workload',
    { timeout: 180_000 },
    async () => {
      const socket = join(root, 'crash.sock');
      const audit = join(root, 'crash-audit.jsonl');
      const first = await startAgentCli(socket, audit);
      // 12 registered and 12 unregistered callers at once; the agent is killed as soon as it decided the first one.
      const burst = [...Array(24).keys()].map((i) => ask(socket, i % 2 === 0 ? 1500 : 1501));
      while (!auditLines(audit).some((l) => l.event === 'issued' || l.event === 'refused')) {
        await new Promise((r) => setTimeout(r, 2));
      }
      first.child.kill('SIGKILL');
      const results = await Promise.all(burst);
      let answered = 0;
      for (const r of results) {
        const a = parse(r.text);
        if (!a) {
          expect(r.text).toMatch(/^(EOF|ERROR)/); // cut off: no token, and the client sees no answer
          continue;
        }
        answered++;
        if (r.uid === 1501) {
          expect(a.ok, r.text).toBe(false);
          expect(a.error!.code).toBe('AGENT_NO_MATCH');
        } else {
          expect(a.ok, r.text).toBe(true);
          expect(subOf(a.token!)).toBe(RUNNER);
        }
      }
      console.log(`agent kill -9: ${answered}/24 answered before the kill, ${24 - answered} cut off`);

      // Restart on the same path (the crashed agent's socket file is replaced) and ask again.
      await startAgentCli(socket, audit);
      const [runner, intruder] = await Promise.all([ask(socket, 1500), ask(socket, 1501)]);
      const ok = parse(runner.text)!;
      expect(ok.ok, runner.text).toBe(true);
      expect(subOf(ok.token!)).toBe(RUNNER);
      const no = parse(intruder.text)!;
      expect(no.ok).toBe(false);
      expect(no.error!.message).toContain('uid 1501');
      // Every token ever issued went to uid 1500.
      const issued = auditLines(audit).filter((l) => l.event === 'issued');
      expect(issued.length).toBeGreaterThan(0);
      expect(issued.every((l) => l.uid === 1500 && l.spiffeId === RUNNER)).toBe(true);
    },
  );

  it(
    'airlock sign --agent-socket: the registered workload signs as the runner; others exit 2; no agent exits 3',
    { timeout: 180_000 },
    async () => {
      const socket = join(root, 'sign.sock');
      await startAgentCli(socket, join(root, 'sign-audit.jsonl'));
      const work = join(root, 'work');
      mkdirSync(work, { mode: 0o755 });
      chownSync(work, 1500, 1500);
      const artifact = join(work, 'artifact.txt');
      writeFileSync(artifact, 'signed by an attested runner\n');
      chownSync(artifact, 1500, 1500);
      const urls = ['--fulcio-url', endpoints.caUrl, '--rekor-url', endpoints.tlogUrl];

      const signed = await runAs(1500, ['sign', artifact, ...urls, '--agent-socket', socket, '--json']);
      expect(signed.code, signed.stdout + signed.stderr).toBe(0);
      expect(JSON.parse(signed.stdout)).toMatchObject({ ok: true, signer: { subjectAlternativeName: RUNNER } });

      // root is not registered: refused with the agent's reason, exit 2, nothing signed.
      const refused = await runCli([
        'sign',
        artifact,
        ...urls,
        '--agent-socket',
        socket,
        '--bundle',
        join(root, 'x.json'),
        '--json',
      ]);
      expect(refused.code, refused.stdout + refused.stderr).toBe(2);
      const body = JSON.parse(refused.stdout) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('AGENT_NO_MATCH');
      expect(body.error.message).toMatch(/caller uid 0 .* matches no registration entry/);

      // AIRLOCK_AGENT_SOCKET pointing at no agent: exit 3.
      const down = await runCli(['sign', artifact, ...urls, '--bundle', join(root, 'y.json'), '--json'], {
        env: { AIRLOCK_AGENT_SOCKET: join(root, 'nobody.sock'), SIGSTORE_ID_TOKEN: '' },
      });
      expect(down.code, down.stdout + down.stderr).toBe(3);
      expect((JSON.parse(down.stdout) as { error: { code: string } }).error.code).toBe('AGENT_UNAVAILABLE');
    },
  );
});

function runAs(uid: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [CLI, ...args], { uid, gid: uid, cwd: REPO_ROOT, env: { ...process.env, HOME: '/tmp' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
