/**
 * Issue 10 §3, mTLS with SPIFFE X509-SVIDs, on real servers and real TLS over loopback:
 *   - issueX509Svid yields a Workload-API-shaped SVID (one URI SAN, not a CA, digitalSignature, server+client auth,
 *     the requested TTL) that chains to its bundle;
 *   - `airlock mirror serve --client-ca --allow-spiffe-id` serves the runner's bridge (`airlock run --mirror https://…
 *     --mirror-svid`) and refuses a client with no certificate, with one from another trust bundle (TLS handshake),
 *     and with a valid SVID whose SPIFFE ID is not allowed (403 naming the ID); with `--agent-socket` the bridge
 *     presents the SVID the attestation agent issued to the (kernel-identified) runner process;
 *   - the transparency log's write endpoint (`startTlogServer` with serviceMtls, as `airlock tlog serve` wires it):
 *     401 without / with a foreign certificate, 403 naming an unauthorized ID, an allowed SVID passes; reads stay open.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { request, type RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSvidCa, issueX509Svid, type SvidCa } from '@airlock/ca';
import { MirrorStore } from '@airlock/cas';
import { startAgent, type AgentLogRecord, type AgentSvidSigner } from '@airlock/agent';
import { IdentityIssuer, serviceMtls, splitDerCertificates, x509SvidToJson, type X509Svid } from '@airlock/identity';
import { startTlogServer, type RunningTlog } from '@airlock/tlog';
import { startCli } from './helpers/cli.js';
import { runCliJson } from './helpers/upstream-e2e.js';
import { toolsAvailable, which } from './helpers/netns.js';

const TD = 'example.org';
const RUNNER_ID = `spiffe://${TD}/airlock/runner`;
const OTHER_ID = `spiffe://${TD}/airlock/intruder`;

interface Pem {
  cert: string;
  key: string;
}

function pemOf(svid: X509Svid): Pem {
  const certs = splitDerCertificates(svid.x509_svid).map((d) => new X509Certificate(d).toString());
  const key = `-----BEGIN PRIVATE KEY-----\n${svid.x509_svid_key!.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END PRIVATE KEY-----\n`;
  return { cert: certs.join(''), key };
}

/** One HTTPS request; resolves with the status and body, or with the TLS/socket error. */
function httpsCall(
  url: string,
  opts: RequestOptions & { body?: string },
): Promise<{ status: number; body: string } | { error: Error }> {
  return new Promise((resolve) => {
    const req = request(url, { checkServerIdentity: () => undefined, agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (error) => resolve({ error }));
    });
    req.on('error', (error) => resolve({ error }));
    req.end(opts.body);
  });
}

let root: string;
let ca: SvidCa;
let foreignCa: SvidCa;
let runner: Pem;
let runnerSvid: X509Svid;
let intruder: Pem;
let foreign: Pem;
let server: Pem;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-mtls-'));
  chmodSync(root, 0o711); // the sandboxed build runs as an unprivileged uid that must reach the run directory
  ca = await createSvidCa({ trustDomain: TD });
  foreignCa = await createSvidCa({ trustDomain: TD });
  runnerSvid = await issueX509Svid({ spiffeId: RUNNER_ID, ca, ttlSeconds: 300 });
  runner = pemOf(runnerSvid);
  intruder = pemOf(await issueX509Svid({ spiffeId: OTHER_ID, ca, ttlSeconds: 300 }));
  foreign = pemOf(await issueX509Svid({ spiffeId: RUNNER_ID, ca: foreignCa, ttlSeconds: 300 }));
  server = pemOf(await issueX509Svid({ spiffeId: `spiffe://${TD}/airlock/mirror`, ca, ttlSeconds: 300 }));
  writeFileSync(join(root, 'bundle.pem'), ca.certificatePem);
  writeFileSync(join(root, 'server.pem'), server.cert);
  writeFileSync(join(root, 'server-key.pem'), server.key, { mode: 0o600 });
  writeFileSync(join(root, 'runner-svid.json'), JSON.stringify(x509SvidToJson(runnerSvid)), { mode: 0o600 });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('issueX509Svid', () => {
  it('issues a Workload-API-shaped X509-SVID: one URI SAN, not a CA, server+client auth, short TTL', () => {
    expect(runnerSvid.spiffe_id).toBe(RUNNER_ID);
    const [leaf, ...rest] = splitDerCertificates(runnerSvid.x509_svid).map((d) => new X509Certificate(d));
    expect(rest).toHaveLength(0);
    expect(leaf!.subjectAltName).toBe(`URI:${RUNNER_ID}`);
    expect(leaf!.ca).toBe(false);
    expect(leaf!.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    const ttl = (new Date(leaf!.validTo).getTime() - new Date(leaf!.validFrom).getTime()) / 1000;
    expect(ttl).toBe(300);
    expect(runnerSvid.expires_at).toBe(new Date(leaf!.validTo).getTime() / 1000);
    const bundle = new X509Certificate(runnerSvid.bundle);
    expect(leaf!.checkIssued(bundle) && leaf!.verify(bundle.publicKey)).toBe(true);
    expect(
      leaf!.checkPrivateKey(createPrivateKey({ key: runnerSvid.x509_svid_key!, format: 'der', type: 'pkcs8' })),
    ).toBe(true);
  });

  it('refuses an ID outside the CA trust domain and a TTL over a day', async () => {
    await expect(issueX509Svid({ spiffeId: 'spiffe://other.org/x', ca })).rejects.toThrow(/trust domain/);
    await expect(issueX509Svid({ spiffeId: RUNNER_ID, ca, ttlSeconds: 90_000 })).rejects.toThrow(/ttlSeconds/);
  });
});

describe('airlock mirror serve --client-ca --allow-spiffe-id', () => {
  let mirror: { url: string; stop: () => Promise<void> } | undefined;
  const store = () => join(root, 'store');

  beforeAll(async () => {
    await (await MirrorStore.open(store())).close();
    const m = await startCli(
      [
        'mirror',
        'serve',
        '--store',
        store(),
        '--listen',
        '127.0.0.1:0',
        '--tls-cert',
        join(root, 'server.pem'),
        '--tls-key',
        join(root, 'server-key.pem'),
        '--client-ca',
        join(root, 'bundle.pem'),
        '--allow-spiffe-id',
        RUNNER_ID,
        '--allow-spiffe-id',
        `^spiffe://${TD.replace('.', '\\.')}/workspace/[a-z]+$`,
        '--json',
      ],
      (o) => o.trim().endsWith('}'),
    );
    mirror = { url: (JSON.parse(m.stdout()) as { url: string }).url, stop: m.stop };
  });
  afterAll(async () => mirror?.stop());

  it('serves a client presenting an allowed SVID', async () => {
    const r = await httpsCall(`${mirror!.url}/`, { ca: ca.certificatePem, ...runner });
    expect(r).toMatchObject({ status: 200 });
    expect((r as { body: string }).body).toContain('airlock-mirror');
  });

  it('refuses a client with no certificate (TLS handshake)', async () => {
    const r = await httpsCall(`${mirror!.url}/`, { ca: ca.certificatePem });
    expect('error' in r).toBe(true);
  });

  it('refuses a client whose certificate is from another trust bundle (TLS handshake)', async () => {
    const r = await httpsCall(`${mirror!.url}/`, { ca: ca.certificatePem, ...foreign });
    expect('error' in r).toBe(true);
  });

  it('refuses a valid SVID whose SPIFFE ID is not allowed: 403 naming the ID', async () => {
    const r = await httpsCall(`${mirror!.url}/`, { ca: ca.certificatePem, ...intruder });
    expect(r).toMatchObject({ status: 403 });
    const body = JSON.parse((r as { body: string }).body) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('MTLS_SPIFFE_ID_FORBIDDEN');
    expect(body.error.message).toContain(OTHER_ID);
  });

  it('refuses --allow-spiffe-id without --client-ca, and an unanchored pattern (exit 2)', async () => {
    const base = ['mirror', 'serve', '--store', store(), '--json'];
    const a = await runCliJson([...base, '--allow-spiffe-id', RUNNER_ID]);
    expect(a.code).toBe(2);
    const b = await runCliJson([
      ...base,
      '--tls-cert',
      join(root, 'server.pem'),
      '--tls-key',
      join(root, 'server-key.pem'),
      '--client-ca',
      join(root, 'bundle.pem'),
      '--allow-spiffe-id',
      '^spiffe://example.org/.*',
    ]);
    expect(b.code).not.toBe(0);
    expect((b.json.error as { message: string }).message).toMatch(/must end with \$/);
  });

  const enabled = toolsAvailable('airlock run through an mTLS mirror (bwrap sandbox, git, python3)', [
    which('bwrap') ? undefined : 'bwrap (bubblewrap) is not installed',
    which('git') ? undefined : 'git is not installed',
    existsSync('/usr/bin/python3') ? undefined : '/usr/bin/python3 is not installed',
  ]);

  describe.skipIf(!enabled)('the runner bridge presents its SVID', () => {
    let spec: string;
    beforeAll(() => {
      const work = join(root, 'src');
      mkdirSync(work);
      writeFileSync(join(work, 'README'), 'mtls\n');
      const git = (...args: string[]) =>
        execFileSync('git', ['-c', 'init.defaultBranch=main', ...args], {
          cwd: work,
          encoding: 'utf8',
          env: {
            ...process.env,
            GIT_CONFIG_NOSYSTEM: '1',
            GIT_CONFIG_GLOBAL: '/dev/null',
            GIT_AUTHOR_NAME: 't',
            GIT_AUTHOR_EMAIL: 't@airlock.invalid',
            GIT_COMMITTER_NAME: 't',
            GIT_COMMITTER_EMAIL: 't@airlock.invalid',
          },
        }).trim();
      git('init', '-q');
      git('add', '-A');
      git('commit', '-q', '-m', 'one');
      // Fails the build unless the mirror answered 200 through the bridge; the body becomes the artifact.
      const fetchScript = [
        'import os, urllib.request',
        'body = urllib.request.urlopen(os.environ["AIRLOCK_MIRROR_URL"] + "/").read()',
        'open(os.environ["AIRLOCK_OUTPUT_DIR"] + "/out.txt", "wb").write(body)',
      ].join('\n');
      spec = join(root, 'build.json');
      writeFileSync(
        spec,
        JSON.stringify({
          source: { repo: work, commit: git('rev-parse', 'HEAD') },
          builder: { type: 'command', argv: ['/usr/bin/python3', '-c', fetchScript] },
          outputs: ['out.txt'],
        }),
      );
    });

    const run = (extra: string[]) =>
      runCliJson([
        'run',
        '--spec',
        spec,
        '--out',
        join(root, `out-${Math.random()}`),
        '--work-root',
        root,
        '--no-sign',
        '--mirror',
        mirror!.url,
        '--json',
        ...extra,
      ]);

    it('an airlock run fetches from the mTLS mirror through the bridge with --mirror-svid', async () => {
      const r = await run(['--mirror-svid', join(root, 'runner-svid.json')]);
      expect(r.json.ok, JSON.stringify(r.json)).toBe(true);
      const artifact = (r.json.artifacts as { path: string }[])[0]!;
      expect(readFileSync(artifact.path, 'utf8')).toContain('airlock-mirror');
    });

    it('with --agent-socket the bridge presents the SVID the attestation agent issued to the runner', async () => {
      const dataDir = join(root, 'agent-issuer');
      const signer = await IdentityIssuer.open({ dataDir, issuerUrl: 'http://127.0.0.1:9', trustDomain: TD });
      const svidSigner: AgentSvidSigner = ({ spiffeId, ttlSeconds }) => issueX509Svid({ ca, spiffeId, ttlSeconds });
      const log: AgentLogRecord[] = [];
      const start = (selectors: string[]) =>
        startAgent({
          socketPath: join(root, `agent-${Math.random().toString(36).slice(2, 8)}.sock`),
          entries: [{ spiffeId: RUNNER_ID, selectors, ttlSeconds: 300 }],
          signer,
          svidSigner,
          log: (r) => log.push(r),
        });
      // This test process's uid running this node binary is the registered runner.
      const agent = await start([`unix:uid:${process.getuid!()}`, `unix:path:${realpathSync(process.execPath)}`]);
      try {
        const r = await run(['--agent-socket', agent.socketPath]);
        expect(r.json.ok, JSON.stringify(r.json)).toBe(true);
        const artifact = (r.json.artifacts as { path: string }[])[0]!;
        expect(readFileSync(artifact.path, 'utf8')).toContain('airlock-mirror');
        expect(log).toContainEqual(
          expect.objectContaining({ event: 'issued', kind: 'x509-svid', spiffeId: RUNNER_ID }),
        );
      } finally {
        await agent.close();
      }
      // An agent where this process is not registered: refused before the build, exit 2, naming the caller.
      const other = await start(['unix:uid:4242']);
      try {
        const r = await run(['--agent-socket', other.socketPath]);
        expect(r.code, JSON.stringify(r.json)).toBe(2);
        expect(r.json.error).toMatchObject({ code: 'AGENT_NO_MATCH' });
        expect((r.json.error as { message: string }).message).toMatch(
          /caller uid \d+ .* matches no registration entry/,
        );
      } finally {
        await other.close();
      }
    });

    it('without a client certificate the https mirror is refused before the build (exit 2)', async () => {
      const r = await run([]);
      expect(r.code).toBe(2);
      expect((r.json.error as { message: string }).message).toMatch(/https:/);
    });
  });
});

describe('the transparency log: submissions need an authorized SVID', () => {
  let tlog: RunningTlog;
  const entry = JSON.stringify({ kind: 'hashedrekord', apiVersion: '0.0.1', spec: {} });
  const post = (extra: RequestOptions) =>
    httpsCall(`${tlog.url}/api/v1/log/entries`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      ca: ca.certificatePem,
      body: entry,
      ...extra,
    });

  beforeAll(async () => {
    const mtls = serviceMtls({
      cert: server.cert,
      key: server.key,
      trustBundle: ca.certificatePem,
      allow: [RUNNER_ID],
      scope: 'writes',
    });
    tlog = await startTlogServer({ dataDir: join(root, 'tlog'), tls: mtls.tls, gate: mtls.gate });
  });
  afterAll(async () => tlog?.close());

  const refusal = (r: Awaited<ReturnType<typeof httpsCall>>) => {
    expect('status' in r, JSON.stringify(r)).toBe(true);
    const { status, body } = r as { status: number; body: string };
    return { status, error: (JSON.parse(body) as { error: { code: string; message: string } }).error };
  };

  it('refuses a submission with no client certificate (401)', async () => {
    const r = refusal(await post({}));
    expect(r.status).toBe(401);
    expect(r.error).toMatchObject({ code: 'MTLS_CLIENT_CERT_MISSING', message: 'no client certificate was presented' });
  });

  it('refuses a submission with a certificate from another trust bundle (401)', async () => {
    const r = refusal(await post(foreign));
    expect(r.status).toBe(401);
    expect(r.error.code).toBe('MTLS_CLIENT_CERT_INVALID');
    expect(r.error.message).toMatch(/does not chain to the trust bundle/);
  });

  it('refuses a valid SVID whose ID is not authorized: 403 naming the ID', async () => {
    const r = refusal(await post(intruder));
    expect(r.status).toBe(403);
    expect(r.error.message).toBe(`SPIFFE ID ${OTHER_ID} is not authorized for this service`);
  });

  it('lets the authorized SVID through to the log (which judges the entry itself), and reads stay open', async () => {
    const r = await post(runner);
    expect('status' in r).toBe(true);
    expect([401, 403]).not.toContain((r as { status: number }).status);
    expect((r as { body: string }).body).not.toContain('MTLS_');
    const read = await httpsCall(`${tlog.url}/api/v1/log`, { ca: ca.certificatePem });
    expect(read).toMatchObject({ status: 200 });
  });
});
