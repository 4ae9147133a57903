/**
 * Registry access as the operator configures it: the registries file and a Kubernetes dockerconfigjson (errors name
 * the file and field, never a secret); tag → digest against real docker-registry processes with Basic auth from a
 * dockerconfigjson, Distribution bearer-token auth (a real token server; the registry checks the JWT), and TLS with
 * a CA file; a host that is not configured is never contacted. Skips (printing why) without docker-registry or
 * openssl unless AIRLOCK_REQUIRE_TOOLS=1.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MEDIA_TYPES, RegistryClient, sha256Digest } from '@airlock/oci';
import {
  HTPASSWD_PASSWORD,
  HTPASSWD_USER,
  makePki,
  opensslProblem,
  registryProblem,
  startRegistry,
  startTokenServer,
  toolsAvailable,
  type RunningRegistry,
  type TokenServer,
} from '@airlock/testkit';
import { loadRegistries, Registries } from '../src/registry/config.js';
import { resolveImage } from '../src/review/resolve.js';

const dir = mkdtempSync(join(tmpdir(), 'airlock-adm-registry-'));
const stops: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const s of stops.reverse()) await s();
  rmSync(dir, { recursive: true, force: true });
});

const never = () => new AbortController().signal;

/**
 * A TCP forwarder on loopback in front of the registry at `url`: the first `hold` connections are held open and
 * never answered (stuck reads), later ones are forwarded. Counts the connections it accepts.
 */
async function startForwarder(
  url: string,
  hold = 0,
): Promise<{ host: string; connections(): number; allHeld: Promise<void> }> {
  const target = new URL(url);
  const sockets = new Set<Socket>();
  let accepted = 0;
  let allHeld!: () => void;
  const held = new Promise<void>((resolve) => (allHeld = resolve));
  if (hold === 0) allHeld();
  const forwarder = createServer((down) => {
    sockets.add(down);
    down.on('error', () => undefined);
    if (++accepted <= hold) {
      if (accepted === hold) allHeld();
      return;
    }
    const up = connect(Number(target.port), target.hostname);
    sockets.add(up);
    down.pipe(up).pipe(down);
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
  });
  await new Promise<void>((resolve) => forwarder.listen(0, '127.0.0.1', resolve));
  stops.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => forwarder.close(() => resolve()));
  });
  const host = `127.0.0.1:${(forwarder.address() as { port: number }).port}`;
  return { host, connections: () => accepted, allHeld: held };
}

function write(name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

async function pushImage(client: RegistryClient, repo: string, tag: string): Promise<string> {
  const config = await client.pushBlob(repo, Buffer.from('{"architecture":"amd64","os":"linux"}'));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: MEDIA_TYPES.ociConfig, digest: config.digest, size: config.size },
      layers: [],
    }),
  );
  await client.putManifest(repo, tag, manifest, MEDIA_TYPES.ociManifest);
  return sha256Digest(manifest);
}

describe('registries configuration', () => {
  it('reads hosts from the registries file and credentials from a dockerconfigjson', () => {
    write('pw', 'hunter2\n');
    const file = write(
      'registries.yaml',
      `registries:\n  reg.a:5000: { plainHttp: true, username: u, passwordFile: pw }\n  reg.b: {}\n`,
    );
    const docker = write(
      'config.json',
      JSON.stringify({
        auths: {
          'https://reg.b': { auth: Buffer.from('bob:s3cret').toString('base64') },
          'reg.c': { username: 'c', password: 'p' },
        },
      }),
    );
    const r = loadRegistries({ file, dockerConfigJson: docker });
    expect(r.list().sort()).toEqual(['reg.a:5000', 'reg.b', 'reg.c']);
    expect(r.client('reg.a:5000').baseUrl.href).toBe('http://reg.a:5000/');
    expect(r.client('reg.b').baseUrl.href).toBe('https://reg.b/');
  });

  it('errors name the file and field, never a secret', () => {
    const bad = (text: string) => () => loadRegistries({ file: write('bad.yaml', text) });
    expect(bad('registries:\n  reg.a: { plainHttp: yes-please }\n')).toThrow(
      'registries.reg.a.plainHttp: must be boolean',
    );
    expect(bad('registries:\n  reg.a: { password: hunter2 }\n')).toThrow('registries.reg.a.password: unknown field');
    expect(bad('registries:\n  reg.a: { username: u }\n')).toThrow(
      'registries.reg.a: username and passwordFile go together',
    );
    expect(bad('registries:\n  "not a host": {}\n')).toThrow('not a host[:port]');
    expect(bad('hosts: {}\n')).toThrow('exactly one field, registries');
    const docker = write(
      'bad.json',
      JSON.stringify({ auths: { 'reg.a': { auth: Buffer.from('no-colon-secret').toString('base64') } } }),
    );
    let message = '';
    try {
      loadRegistries({ dockerConfigJson: docker });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('auths.reg.a: needs auth (base64 of user:password) or username and password');
    expect(message).not.toContain('no-colon-secret');
  });

  it('a host that is not configured is refused without contacting it', async () => {
    await expect(resolveImage('evil.example:443/acme/app:v1', new Registries([]), never())).rejects.toThrow(
      'registry evil.example:443 is not one the admission controller is configured to use',
    );
    await expect(resolveImage('app:v1', new Registries([]), never())).rejects.toThrow('names no registry host');
  });
});

const enabled = toolsAvailable('registry auth (docker-registry, openssl)', [registryProblem(), opensslProblem()]);

describe.runIf(enabled)('tag → digest through real registries', () => {
  it('Basic auth from a dockerconfigjson; wrong credentials are a registry error', async () => {
    const reg: RunningRegistry = await startRegistry(join(dir, 'basic'), { htpasswd: true });
    stops.push(reg.stop);
    const digest = await pushImage(
      new RegistryClient({ url: reg.url, auth: { username: HTPASSWD_USER, password: HTPASSWD_PASSWORD } }),
      'acme/app',
      'v1',
    );
    const file = write('basic.yaml', `registries:\n  '${reg.host}': { plainHttp: true }\n`);
    const good = write(
      'good.json',
      JSON.stringify({
        auths: { [reg.host]: { auth: Buffer.from(`${HTPASSWD_USER}:${HTPASSWD_PASSWORD}`).toString('base64') } },
      }),
    );
    const r = await resolveImage(`${reg.host}/acme/app:v1`, loadRegistries({ file, dockerConfigJson: good }), never());
    expect(r).toEqual({
      registry: reg.host,
      repository: 'acme/app',
      digest,
      pinned: `${reg.host}/acme/app@${digest}`,
      fromTag: 'v1',
    });
    const wrong = write(
      'wrong.json',
      JSON.stringify({ auths: { [reg.host]: { username: HTPASSWD_USER, password: 'nope-not-it' } } }),
    );
    const err = await resolveImage(
      `${reg.host}/acme/app:v1`,
      loadRegistries({ file, dockerConfigJson: wrong }),
      never(),
    ).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^tag v1: registry error: .*HTTP 401/);
    expect((err as Error).message).not.toContain('nope-not-it');
  });

  it('bearer-token auth: the token is fetched from the realm with the credentials and reused', async () => {
    const creds = { username: 'robot', password: 'token-pw' };
    const tokens: TokenServer = await startTokenServer(join(dir, 'tokens'), creds);
    stops.push(tokens.close);
    const reg = await startRegistry(join(dir, 'bearer'), { token: tokens });
    stops.push(reg.stop);
    const pusher = new RegistryClient({ url: reg.url, auth: creds });
    const digest = await pushImage(pusher, 'acme/app', 'v2');
    const registries = new Registries([{ host: reg.host, plainHttp: true, auth: creds }]);
    const before = tokens.issued.length;
    for (let i = 0; i < 3; i++)
      expect((await resolveImage(`${reg.host}/acme/app:v2`, registries, never())).digest).toBe(digest);
    expect(tokens.issued.slice(before)).toEqual(['repository:acme/app:pull']);
    const anonymous = new Registries([{ host: reg.host, plainHttp: true }]);
    await expect(resolveImage(`${reg.host}/acme/app:v2`, anonymous, never())).rejects.toThrow(
      /token from http:\/\/127\.0\.0\.1:\d+\/token: HTTP 401/,
    );
  });

  it('TLS with the registry CA from the registries file; without it the certificate is refused', async () => {
    const pki = makePki(mkdtempSync(join(dir, 'pki-')));
    const reg = await startRegistry(join(dir, 'tls'), { tls: pki });
    stops.push(reg.stop);
    const { readFileSync } = await import('node:fs');
    const digest = await pushImage(
      new RegistryClient({ url: reg.url, ca: readFileSync(pki.caFile) }),
      'acme/app',
      'v3',
    );
    const withCa = loadRegistries({
      file: write('tls.yaml', `registries:\n  '${reg.host}': { caFile: ${JSON.stringify(pki.caFile)} }\n`),
    });
    expect((await resolveImage(`${reg.host}/acme/app:v3`, withCa, never())).digest).toBe(digest);
    const withoutCa = new Registries([{ host: reg.host, plainHttp: false }]);
    await expect(resolveImage(`${reg.host}/acme/app:v3`, withoutCa, never())).rejects.toThrow(
      /registry error: .*(certificate|self.signed)/i,
    );
    // `--registry-ca`: the default CA for https hosts whose entry names none (also hosts only in dockerconfigjson).
    const byDefault = loadRegistries({
      file: write('tls-default.yaml', `registries:\n  '${reg.host}': {}\n`),
      defaultCaFile: pki.caFile,
    });
    expect((await resolveImage(`${reg.host}/acme/app:v3`, byDefault, never())).digest).toBe(digest);
    const dockerOnly = loadRegistries({
      dockerConfigJson: write(
        'tls-docker.json',
        JSON.stringify({ auths: { [reg.host]: { username: 'u', password: 'p' } } }),
      ),
      defaultCaFile: pki.caFile,
    });
    expect((await resolveImage(`${reg.host}/acme/app:v3`, dockerOnly, never())).digest).toBe(digest);
    expect(() => loadRegistries({ defaultCaFile: write('not-a-ca.pem', 'hello') })).toThrow(
      /registry CA file .*not-a-ca\.pem: no PEM certificate in it/,
    );
    byDefault.close();
    dockerOnly.close();
  });

  it('tag lookups reuse a kept-alive connection per registry host (no handshake per lookup)', async () => {
    const reg = await startRegistry(join(dir, 'keepalive'));
    stops.push(reg.stop);
    const digest = await pushImage(new RegistryClient({ url: reg.url }), 'acme/app', 'v4');
    // A TCP forwarder in front of the real registry, counting the connections the client opens.
    const fwd = await startForwarder(reg.url);
    const host = fwd.host;
    const registries = new Registries([{ host, plainHttp: true }]);
    for (let i = 0; i < 5; i++)
      expect((await resolveImage(`${host}/acme/app:v4`, registries, never())).digest).toBe(digest);
    expect(fwd.connections()).toBe(1);
    registries.close();
  });
});

describe.runIf(enabled)('tag lookups on their own connections', () => {
  it('a tag lookup is answered while every verification connection to the host is stuck', async () => {
    const reg = await startRegistry(join(dir, 'tagpool'));
    stops.push(reg.stop);
    const digest = await pushImage(new RegistryClient({ url: reg.url }), 'acme/app', 'v5');
    // In front of the real registry: the first STUCK connections are held open and never answered (a burst of slow
    // verification reads); later ones are forwarded.
    const STUCK = 16;
    const fwd = await startForwarder(reg.url, STUCK);
    const host = fwd.host;
    // An idle timeout longer than the guard below: the stuck reads must not free their sockets by timing out.
    const registries = new Registries([{ host, plainHttp: true }], { timeoutMs: 60_000 });
    const stuck = new AbortController();
    const reads = Array.from({ length: STUCK }, () =>
      registries
        .client(host, stuck.signal)
        .getManifest('acme/app', digest)
        .catch(() => undefined),
    );
    await fwd.allHeld;
    // Not a timing assertion: only turns "queued behind the stuck reads" into a failure instead of a hang.
    let guardTimer: NodeJS.Timeout | undefined;
    const queued = new Promise<'queued'>((resolve) => (guardTimer = setTimeout(() => resolve('queued'), 10_000)));
    const lookup = resolveImage(`${host}/acme/app:v5`, registries, never()).then((r) => r.digest);
    lookup.catch(() => undefined);
    expect(await Promise.race([lookup, queued])).toBe(digest);
    clearTimeout(guardTimer);
    stuck.abort();
    await Promise.all(reads);
    registries.close();
  });
});
