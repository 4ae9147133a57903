/**
 * The admission HTTPS server against small in-test controllers (the decision logic is tested with the real
 * controller elsewhere): envelope checks, malformed and oversized input, the internal deadline, fail-closed
 * answers, metrics, readiness, /workspace, and TLS (minimum version, reload on change, broken pair kept out).
 * Everything runs on 127.0.0.1 over real TLS with a throwaway openssl PKI.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makePki, opensslProblem, toolsAvailable, type TestPki } from '@airlock/testkit';
import {
  AdmissionMetrics,
  startAdmissionServer,
  type AdmissionServer,
  type AdmissionServerOptions,
} from '../src/index.js';
import type {
  AdmissionController,
  AdmissionRequest,
  AdmissionResponse,
  DecideOptions,
  WorkspaceRequest,
  WorkspaceVerdict,
} from '../src/types.js';
import { call, podReview, postJson, rawTls, responseOf } from './server-helpers.js';

const available = toolsAvailable('admission server TLS', [opensslProblem()]);

/** A controller whose decisions the test scripts per call; records what it was given. */
class ScriptedController implements AdmissionController {
  decideWith: (request: AdmissionRequest, options: DecideOptions) => Promise<AdmissionResponse> = async (r) => ({
    uid: r.uid,
    allowed: true,
    auditAnnotations: { policy: 'test' },
  });
  workspaceWith: (request: WorkspaceRequest, options: { signal: AbortSignal }) => Promise<WorkspaceVerdict> = async (
    r,
  ) => ({
    allowed: true,
    reason: `${r.image} verified`,
    image: { reference: r.image, digest: `sha256:${'a'.repeat(64)}`, verdict: 'PASS' },
    toolchains: (r.toolchains ?? []).map((t) => ({ path: t.path, verdict: 'PASS' as const })),
  });
  readiness: { ok: boolean; reason?: string } = { ok: true };
  seen: { request: AdmissionRequest; options: DecideOptions }[] = [];
  workspaces: WorkspaceRequest[] = [];

  decide(request: AdmissionRequest, options: DecideOptions): Promise<AdmissionResponse> {
    this.seen.push({ request, options });
    return this.decideWith(request, options);
  }
  checkWorkspace(request: WorkspaceRequest, options: { signal: AbortSignal }): Promise<WorkspaceVerdict> {
    this.workspaces.push(request);
    return this.workspaceWith(request, options);
  }
  ready(): { ok: boolean; reason?: string } {
    return this.readiness;
  }
  async close(): Promise<void> {}
}

/** Resolves when `signal` aborts (a controller that only stops when told to). */
const untilAborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_resolve, reject) =>
    signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
  );

describe.skipIf(!available)('admission server', () => {
  let dir: string;
  let pki: TestPki;
  let ca: Buffer;
  let controller: ScriptedController;
  let server: AdmissionServer;
  const logs: string[] = [];
  const started: AdmissionServer[] = [];

  const start = async (extra: Partial<AdmissionServerOptions> = {}): Promise<AdmissionServer> => {
    const s = await startAdmissionServer({
      controller,
      tls: { certFile: pki.certFile, keyFile: pki.keyFile },
      log: (l) => logs.push(l),
      ...extra,
    });
    started.push(s);
    return s;
  };
  const healthy = async (s: AdmissionServer = server): Promise<void> => {
    const r = await call(s.url, ca, '/healthz');
    expect(r.status).toBe(200);
    expect(r.json()).toEqual({ status: 'ok' });
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'airlock-admission-server-'));
    mkdirSync(join(dir, 'pki'));
    pki = makePki(join(dir, 'pki'));
    ca = readFileSync(pki.caFile);
    controller = new ScriptedController();
    server = await start({ deadlineMs: 8_000 });
  });

  afterAll(async () => {
    for (const s of started) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('allow and deny pass through with the request uid and audit annotations', () => {
    it('an allow echoes the uid, says allowed, carries verdict and the controller annotations', async () => {
      const review = podReview(['registry.corp/app:v1']);
      const r = await postJson(server.url, ca, '/validate', review);
      expect(r.status).toBe(200);
      const response = responseOf(r);
      expect(response).toMatchObject({ uid: review.request!.uid, allowed: true });
      expect(response.auditAnnotations).toEqual({ verdict: 'allow', policy: 'test' });
      expect(controller.seen.at(-1)!.options.mutate).toBe(false);
    });

    it('/mutate passes mutate: true and returns the patch; /validate drops a patch', async () => {
      const patch = Buffer.from('[{"op":"replace","path":"/spec/containers/0/image","value":"x@sha256:00"}]').toString(
        'base64',
      );
      controller.decideWith = async (r) => ({ uid: r.uid, allowed: true, patchType: 'JSONPatch', patch });
      try {
        const m = responseOf(await postJson(server.url, ca, '/mutate?timeout=10s', podReview(['a:1'])));
        expect(controller.seen.at(-1)!.options.mutate).toBe(true);
        expect(m).toMatchObject({ allowed: true, patchType: 'JSONPatch', patch });
        const v = responseOf(await postJson(server.url, ca, '/validate', podReview(['a:1'])));
        expect(v.allowed).toBe(true);
        expect(v.patch).toBeUndefined();
        expect(v.patchType).toBeUndefined();
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it('a deny keeps its message and gets code 403 and verdict deny', async () => {
      controller.decideWith = async (r) => ({
        uid: r.uid,
        allowed: false,
        status: { message: 'image a:1 has no valid signature' },
      });
      try {
        const res = responseOf(await postJson(server.url, ca, '/validate', podReview(['a:1'])));
        expect(res).toMatchObject({
          allowed: false,
          status: { code: 403, message: 'image a:1 has no valid signature' },
          auditAnnotations: { verdict: 'deny' },
        });
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it('the audit verdict never contradicts allowed: a deny annotated "allow" is audited as deny; dry-run kept', async () => {
      controller.decideWith = async (r) => ({
        uid: r.uid,
        allowed: r.dryRun !== true ? false : true,
        status: { message: 'no signature' },
        auditAnnotations: { verdict: r.dryRun ? 'dry-run' : 'allow', policy: 'p' },
      });
      try {
        const denied = responseOf(await postJson(server.url, ca, '/validate', podReview(['a:1'])));
        expect(denied.allowed).toBe(false);
        expect(denied.auditAnnotations).toEqual({ verdict: 'deny', policy: 'p' });
        const dry = responseOf(await postJson(server.url, ca, '/validate', podReview(['a:1'], { dryRun: true })));
        expect(dry.auditAnnotations).toEqual({ verdict: 'dry-run', policy: 'p' });
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it('warnings are kept (each at most 120 characters) and counted as verdict warn', async () => {
      controller.decideWith = async (r) => ({ uid: r.uid, allowed: true, warnings: ['w'.repeat(500), 'short'] });
      try {
        const res = responseOf(await postJson(server.url, ca, '/validate', podReview(['a:1'])));
        expect(res.allowed).toBe(true);
        expect(res.warnings).toHaveLength(2);
        expect(res.warnings![0]!.length).toBe(120);
        expect(res.auditAnnotations?.verdict).toBe('warn');
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });
  });

  describe('fail closed: errors, nonsense answers and the deadline are denials', () => {
    it('a controller that throws → deny naming the images and the error, never allow', async () => {
      controller.decideWith = async () => {
        throw Object.assign(new Error('registry.corp unreachable'), { code: 'REGISTRY_UNREACHABLE' });
      };
      try {
        const review = podReview(['registry.corp/app:v1', 'registry.corp/side:v2']);
        const res = responseOf(await postJson(server.url, ca, '/validate', review));
        expect(res.uid).toBe(review.request!.uid);
        expect(res.allowed).toBe(false);
        expect(res.status?.message).toContain('registry.corp/app:v1, registry.corp/side:v2');
        expect(res.status?.message).toContain('REGISTRY_UNREACHABLE: registry.corp unreachable');
        expect(res.auditAnnotations).toMatchObject({ verdict: 'deny', reason: 'internal-error' });
        await healthy();
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it('a controller that throws synchronously → deny', async () => {
      controller.decideWith = () => {
        throw new TypeError('bug');
      };
      try {
        const res = responseOf(await postJson(server.url, ca, '/validate', podReview(['a:1'])));
        expect(res.allowed).toBe(false);
        expect(res.status?.message).toContain('internal error');
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it.each([
      ['allowed is the string "true"', (uid: string) => ({ uid, allowed: 'true' })],
      ['the answer is for another uid', () => ({ uid: 'someone-else', allowed: true })],
      ['the answer is null', () => null],
    ])('a malformed controller answer (%s) → deny', async (_name, answer) => {
      controller.decideWith = async (r) => answer(r.uid) as unknown as AdmissionResponse;
      try {
        const review = podReview(['a:1']);
        const res = responseOf(await postJson(server.url, ca, '/validate', review));
        expect(res.uid).toBe(review.request!.uid);
        expect(res.allowed).toBe(false);
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it('a controller still working at the deadline → the server denies, naming the images; the signal aborts', async () => {
      const short = await start({ deadlineMs: 300 });
      let aborted: unknown;
      controller.decideWith = async (_r, { signal }) => {
        try {
          return await untilAborted(signal);
        } catch (e) {
          aborted = signal.reason;
          throw e;
        }
      };
      try {
        const review = podReview(['registry.corp/slow:v1']);
        const res = responseOf(await postJson(short.url, ca, '/validate', review));
        expect(res.uid).toBe(review.request!.uid);
        expect(res.allowed).toBe(false);
        expect(res.status?.message).toBe(
          'airlock: no verdict within 300 ms while checking registry.corp/slow:v1; denied (fail closed)',
        );
        expect(res.auditAnnotations).toMatchObject({ verdict: 'deny', reason: 'deadline-exceeded' });
        expect(aborted).toMatchObject({ code: 'ADMISSION_DEADLINE_EXCEEDED' });
        await healthy(short);
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it("the API server's ?timeout= shortens the deadline to 80% of it (never answer after the caller gave up)", async () => {
      controller.decideWith = async (_r, { signal }) => untilAborted(signal);
      try {
        const res = responseOf(await postJson(server.url, ca, '/validate?timeout=1s', podReview(['a:1'])));
        expect(res.allowed).toBe(false);
        expect(res.status?.message).toContain('no verdict within 800 ms');
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });
  });

  describe('malformed input: each answered, the server keeps serving', () => {
    it('truncated JSON → 400 with a JSON error', async () => {
      const text = JSON.stringify(podReview(['a:1']));
      const r = await call(server.url, ca, '/validate', { body: text.slice(0, text.length / 2) });
      expect(r.status).toBe(400);
      expect(r.json()).toEqual({
        error: { code: 'ADMISSION_BAD_REQUEST', message: 'the request body is not valid JSON' },
      });
      await healthy();
    });

    it('an empty body, a JSON array → 400', async () => {
      for (const body of ['', ' \n\t']) {
        const r = await call(server.url, ca, '/validate', { body });
        expect(r.status).toBe(400);
        expect(r.json()).toEqual({ error: { code: 'ADMISSION_BAD_REQUEST', message: 'the request body is empty' } });
      }
      expect((await call(server.url, ca, '/validate', { body: '[]' })).status).toBe(400);
      await healthy();
    });

    it('wrong apiVersion → 400 naming it', async () => {
      const review = { ...podReview(['a:1']), apiVersion: 'admission.k8s.io/v1beta1' };
      const r = await postJson(server.url, ca, '/validate', review);
      expect(r.status).toBe(400);
      expect(r.json()).toMatchObject({
        error: { code: 'ADMISSION_BAD_REQUEST', message: expect.stringContaining('"admission.k8s.io/v1beta1"') },
      });
      await healthy();
    });

    it('wrong envelope kind → 400', async () => {
      const r = await postJson(server.url, ca, '/validate', { ...podReview(['a:1']), kind: 'AdmissionRequest' });
      expect(r.status).toBe(400);
      expect(r.text).toContain('kind must be AdmissionReview');
      await healthy();
    });

    it('missing request.uid → 400; no request at all → 400', async () => {
      const review = podReview(['a:1']);
      delete (review.request as Partial<AdmissionRequest>).uid;
      const r = await postJson(server.url, ca, '/validate', review);
      expect(r.status).toBe(400);
      expect(r.text).toContain('request.uid is missing');
      const none = await postJson(server.url, ca, '/validate', {
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
      });
      expect(none.status).toBe(400);
      await healthy();
    });

    it('a uid with a malformed request (bad operation, kind not an object) → an AdmissionReview deny for that uid', async () => {
      const before = controller.seen.length;
      const op = podReview(['a:1'], { operation: 'PATCH' as AdmissionRequest['operation'] });
      const r1 = responseOf(await postJson(server.url, ca, '/validate', op));
      expect(r1).toMatchObject({ uid: op.request!.uid, allowed: false, auditAnnotations: { verdict: 'deny' } });
      expect(r1.status?.message).toContain('request.operation must be one of');
      const kind = podReview(['a:1'], { kind: 'Pod' as unknown as AdmissionRequest['kind'] });
      const r2 = responseOf(await postJson(server.url, ca, '/validate', kind));
      expect(r2).toMatchObject({ uid: kind.request!.uid, allowed: false });
      expect(controller.seen.length).toBe(before);
      await healthy();
    });

    it('an unknown object kind reaches the controller and is answered', async () => {
      const review = podReview([], { kind: { group: 'acme.io', version: 'v1', kind: 'Frobnicator' } });
      const res = responseOf(await postJson(server.url, ca, '/validate', review));
      expect(res.uid).toBe(review.request!.uid);
      expect(controller.seen.at(-1)!.request.kind.kind).toBe('Frobnicator');
      await healthy();
    });

    it('a 5,000-character image reference is answered (a deny from a throwing controller stays bounded)', async () => {
      const long = `registry.corp/${'a'.repeat(5_000)}:v1`;
      controller.decideWith = async () => {
        throw new Error(`invalid reference ${long}`);
      };
      try {
        const review = podReview([long]);
        const r = await postJson(server.url, ca, '/validate', review);
        expect(r.status).toBe(200);
        const res = responseOf(r);
        expect(res).toMatchObject({ uid: review.request!.uid, allowed: false });
        expect(res.status!.message!.length).toBeLessThan(1_000);
        expect(controller.seen.at(-1)!.request.object).toMatchObject({ spec: { containers: [{ image: long }] } });
        await healthy();
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });

    it('a 10 MiB body declared in Content-Length → 413 before the body is sent', async () => {
      const { socket, received } = await rawTls(server.url, ca);
      socket.write(
        'POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
          `Content-Length: ${10 * 1024 * 1024}\r\n\r\n{"apiVersion":`,
      );
      const answer = await received();
      expect(answer).toMatch(/^HTTP\/1\.1 413 /);
      expect(answer).toContain('"code":"ADMISSION_BODY_TOO_LARGE"');
      await healthy();
    });

    // A refused body is read and discarded (bounded) before the connection may close: closing with unread data
    // makes the kernel send a TCP RST, and a client still writing loses the 413 to EPIPE/ECONNRESET.
    it('after a 413 the server reads the rest of the body: the client finishes writing and the connection still serves', async () => {
      const { socket } = await rawTls(server.url, ca);
      let data = '';
      const gotData = (pattern: RegExp): Promise<void> =>
        new Promise((resolve, reject) => {
          const check = (): void => {
            if (pattern.test(data)) {
              socket.off('data', check);
              resolve();
            }
          };
          socket.on('data', check);
          socket.once('close', () => reject(new Error(`connection closed; received: ${data.slice(0, 300)}`)));
          check();
        });
      socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
      const size = 10 * 1024 * 1024;
      socket.write(
        'POST /validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n' +
          `Content-Length: ${size}\r\n\r\n`,
      );
      await gotData(/^HTTP\/1\.1 413 [^]*"code":"ADMISSION_BODY_TOO_LARGE"[^]*\}$/);
      // The whole body after the answer, then another request on the same connection.
      const written = new Promise<void>((resolve, reject) =>
        socket.write(Buffer.alloc(size, 0x20), (err) => (err ? reject(err) : resolve())),
      );
      await written;
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
      await gotData(/HTTP\/1\.1 200 [^]*$/);
      socket.destroy();
      await healthy();
    });

    it('a 10 MiB body sent whole (Content-Length or chunked) → 413, never a cut connection', async () => {
      const body = Buffer.alloc(10 * 1024 * 1024, 0x20);
      for (const headers of [{}, { 'transfer-encoding': 'chunked' }] as Record<string, string>[]) {
        const r = await call(server.url, ca, '/validate', { body, headers }).catch((e: NodeJS.ErrnoException) => e);
        const what = JSON.stringify(headers);
        expect(r instanceof Error ? `${r.code ?? ''} ${r.message}` : r.status, what).toBe(413);
        expect((r as { json: () => unknown }).json(), what).toMatchObject({
          error: { code: 'ADMISSION_BODY_TOO_LARGE' },
        });
      }
      await healthy();
    });

    it('GET /validate → 405; unknown path → 404', async () => {
      expect((await call(server.url, ca, '/validate')).status).toBe(405);
      expect((await call(server.url, ca, '/nope')).status).toBe(404);
      await healthy();
    });
  });

  describe('readiness and metrics', () => {
    it('/readyz follows controller.ready()', async () => {
      expect((await call(server.url, ca, '/readyz')).status).toBe(200);
      controller.readiness = { ok: false, reason: 'trusted root not loaded' };
      try {
        const r = await call(server.url, ca, '/readyz');
        expect(r.status).toBe(503);
        expect(r.json()).toEqual({ ready: false, reason: 'trusted root not loaded' });
      } finally {
        controller.readiness = { ok: true };
      }
    });

    it('/metrics counts requests by endpoint/kind/verdict, latency, cache, registry errors (bounded labels)', async () => {
      const metrics = new AdmissionMetrics();
      const s = await start({ metrics });
      const local = new ScriptedController();
      // The controller reports cache and registry events through the same object the server renders.
      local.decideWith = async (r) => {
        metrics.cache(r.kind.kind === 'Pod');
        if (r.kind.kind !== 'Pod') metrics.registryError('registry.corp:5000');
        if (r.kind.kind !== 'Pod') metrics.verification();
        metrics.tagLookup();
        return { uid: r.uid, allowed: r.kind.kind === 'Pod' };
      };
      controller.decideWith = local.decideWith;
      try {
        await postJson(s.url, ca, '/validate', podReview(['a:1']));
        await postJson(
          s.url,
          ca,
          '/mutate',
          podReview(['a:1'], { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }),
        );
        await postJson(
          s.url,
          ca,
          '/validate',
          podReview(['a:1'], { kind: { group: 'x', version: 'v1', kind: 'Evil"\nKind' } }),
        );
        await call(s.url, ca, '/validate', { body: '{' });
        metrics.registryError('bad host with spaces');
        const r = await call(s.url, ca, '/metrics');
        expect(r.status).toBe(200);
        expect(r.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
        const text = r.text;
        expect(text).toContain('airlock_admission_requests_total{endpoint="validate",kind="Pod",verdict="allow"} 1');
        expect(text).toContain(
          'airlock_admission_requests_total{endpoint="mutate",kind="Deployment",verdict="deny"} 1',
        );
        expect(text).toContain('airlock_admission_requests_total{endpoint="validate",kind="other",verdict="deny"} 1');
        expect(text).toContain('airlock_admission_request_duration_seconds_count{endpoint="validate"} 2');
        expect(text).toContain('airlock_admission_request_duration_seconds_bucket{endpoint="validate",le="+Inf"} 2');
        expect(text).toContain('airlock_admission_cache_hits_total 1');
        expect(text).toContain('airlock_admission_cache_misses_total 2');
        expect(text).toContain('airlock_admission_verifications_total 2');
        expect(text).toContain('airlock_admission_tag_lookups_total 3');
        expect(text).toContain('airlock_admission_registry_errors_total{host="registry.corp:5000"} 2');
        expect(text).toContain('airlock_admission_registry_errors_total{host="other"} 1');
        expect(text).toContain('airlock_admission_rejected_requests_total{code="ADMISSION_BAD_REQUEST"} 1');
        expect(text).not.toContain('Evil');
        // Every sample line is `name{labels} value` or `name value`, every family has HELP and TYPE.
        for (const line of text.trim().split('\n')) {
          expect(line).toMatch(/^(# (HELP|TYPE) airlock_[a-z_]+ .+|airlock_[a-z_]+(\{[^}\n]*\})? [0-9.e+-]+)$/);
        }
      } finally {
        controller.decideWith = new ScriptedController().decideWith;
      }
    });
  });

  describe('POST /workspace', () => {
    it('WorkspaceRequest in, WorkspaceVerdict out', async () => {
      const r = await postJson(server.url, ca, '/workspace', { image: 'registry.corp/ws:1' });
      expect(r.status).toBe(200);
      expect(r.json()).toMatchObject({ allowed: true, image: { reference: 'registry.corp/ws:1', verdict: 'PASS' } });
    });

    it('malformed requests → 400', async () => {
      for (const body of [{}, { image: 7 }, { image: 'x', toolchains: 'gcc' }, { image: 'x', toolchains: [{}] }]) {
        const r = await postJson(server.url, ca, '/workspace', body);
        expect(r.status, JSON.stringify(body)).toBe(400);
      }
      await healthy();
    });

    it('toolchain paths are refused without --toolchain-dir, confined to it with one', async () => {
      const refused = await postJson(server.url, ca, '/workspace', {
        image: 'x',
        toolchains: [{ path: '/etc/passwd' }],
      });
      expect(refused.status).toBe(400);
      expect(refused.text).toContain('no --toolchain-dir');
      const tools = join(dir, 'toolchains');
      mkdirSync(tools);
      writeFileSync(join(tools, 'gcc.tar'), 'gcc');
      symlinkSync('/etc/passwd', join(tools, 'escape'));
      const s = await start({ toolchainDir: tools });
      for (const path of ['/etc/passwd', '../pki/server.key', 'escape', 'missing.tar']) {
        const r = await postJson(s.url, ca, '/workspace', { image: 'x', toolchains: [{ path }] });
        expect(r.status, path).toBe(400);
      }
      const ok = await postJson(s.url, ca, '/workspace', { image: 'x', toolchains: [{ path: 'gcc.tar' }] });
      expect(ok.status).toBe(200);
      expect(controller.workspaces.at(-1)!.toolchains).toEqual([{ path: join(tools, 'gcc.tar') }]);
    });

    it('a throwing or late controller → refused, never allowed', async () => {
      controller.workspaceWith = async () => {
        throw new Error('boom');
      };
      const short = await start({ deadlineMs: 200 });
      try {
        const thrown = (await postJson(server.url, ca, '/workspace', { image: 'x:1' })).json() as WorkspaceVerdict;
        expect(thrown).toMatchObject({ allowed: false, image: { reference: 'x:1', verdict: 'ERROR' } });
        expect(thrown.reason).toContain('internal error: boom');
        controller.workspaceWith = async (_r, { signal }) => untilAborted(signal);
        const late = (await postJson(short.url, ca, '/workspace', { image: 'x:1' })).json() as WorkspaceVerdict;
        expect(late).toMatchObject({ allowed: false });
        expect(late.reason).toContain('no verdict within 200 ms');
      } finally {
        controller.workspaceWith = new ScriptedController().workspaceWith;
      }
    });
  });

  describe('TLS', () => {
    const fingerprint = (
      url: string,
      options: { minVersion?: 'TLSv1.2'; maxVersion?: 'TLSv1' | 'TLSv1.1' | 'TLSv1.2' } = {},
    ) =>
      new Promise<string>((resolve, reject) => {
        const u = new URL(url);
        const socket = connect({ host: u.hostname, port: Number(u.port), ca, ...options }, () => {
          const cert = socket.getPeerX509Certificate();
          socket.end();
          resolve(cert ? cert.fingerprint256 : '');
        });
        socket.on('error', reject);
      });

    it('refuses TLS 1.1, accepts TLS 1.2', async () => {
      await expect(fingerprint(server.url, { maxVersion: 'TLSv1.1' })).rejects.toThrow();
      await expect(fingerprint(server.url, { maxVersion: 'TLSv1.2' })).resolves.toMatch(/:/);
    });

    it('reloads a new certificate/key written over the files; keeps the old one when the new pair is broken', async () => {
      const live = join(dir, 'live');
      mkdirSync(live);
      copyFileSync(pki.certFile, join(live, 'tls.crt'));
      copyFileSync(pki.keyFile, join(live, 'tls.key'));
      const next = join(dir, 'pki2');
      mkdirSync(next);
      const pki2 = makePki(next);
      const results: { ok: boolean; error?: string }[] = [];
      let notify: (() => void) | undefined;
      const s = await start({
        tls: { certFile: join(live, 'tls.crt'), keyFile: join(live, 'tls.key') },
        onTlsReload: (r) => {
          results.push(r);
          notify?.();
        },
      });
      const reloaded = (count: number): Promise<void> =>
        new Promise((resolve) => {
          notify = () => {
            if (results.length >= count) resolve();
          };
          notify();
        });
      const first = new X509Certificate(readFileSync(pki.certFile)).fingerprint256;
      expect(await fingerprint(s.url)).toBe(first);

      // A broken pair: a certificate from the second PKI with the first key (mismatch) — refused, old one served.
      copyFileSync(pki2.certFile, join(live, 'tls.crt'));
      await reloaded(1);
      expect(results.at(-1)).toMatchObject({ ok: false, error: expect.stringContaining('key values mismatch') });
      expect(await fingerprint(s.url)).toBe(first);
      expect(logs.some((l) => l.includes('TLS reload refused, still serving the previous certificate'))).toBe(true);

      // The matching key arrives: the new pair is served (the client trusts both CAs).
      copyFileSync(pki2.keyFile, join(live, 'tls.key'));
      await new Promise<void>((resolve) => {
        notify = () => {
          if (results.at(-1)?.ok) resolve();
        };
        notify();
      });
      const second = new X509Certificate(readFileSync(pki2.certFile)).fingerprint256;
      const both = Buffer.concat([ca, readFileSync(pki2.caFile)]);
      const fp = await new Promise<string>((resolve, reject) => {
        const u = new URL(s.url);
        const socket = connect({ host: u.hostname, port: Number(u.port), ca: both }, () => {
          resolve(socket.getPeerX509Certificate()!.fingerprint256);
          socket.end();
        });
        socket.on('error', reject);
      });
      expect(fp).toBe(second);
      const metrics = (await call(s.url, both, '/metrics')).text;
      expect(metrics).toMatch(/airlock_admission_tls_reloads_total\{result="ok"\} [1-9]/);
      expect(metrics).toMatch(/airlock_admission_tls_reloads_total\{result="error"\} [1-9]/);
    });

    it('refuses to start with a broken pair', async () => {
      const bad = join(dir, 'bad.crt');
      writeFileSync(bad, 'not a certificate');
      await expect(
        startAdmissionServer({ controller, tls: { certFile: bad, keyFile: pki.keyFile } }),
      ).rejects.toMatchObject({ code: 'ADMISSION_TLS_INVALID' });
    });
  });

  it('more requests than maxConcurrentRequests → 503 at once; the held one still answers', async () => {
    const s = await start({ maxConcurrentRequests: 1 });
    let release: (() => void) | undefined;
    let entered: (() => void) | undefined;
    const inside = new Promise<void>((r) => (entered = r));
    controller.decideWith = async (r) => {
      entered?.();
      await new Promise<void>((resolve) => (release = resolve));
      return { uid: r.uid, allowed: true };
    };
    try {
      const held = postJson(s.url, ca, '/validate', podReview(['a:1']));
      await inside;
      const busy = await postJson(s.url, ca, '/validate', podReview(['a:1']));
      expect(busy.status).toBe(503);
      expect(busy.headers['retry-after']).toBe('1');
      release!();
      expect(responseOf(await held).allowed).toBe(true);
    } finally {
      controller.decideWith = new ScriptedController().decideWith;
    }
  });
});
