/**
 * listReferrers with a ReferrersHint (what the admission webhook gives every client of one registry host), against
 * a real docker-registry (Distribution 2.8.2: no referrers API, so the `sha256-<hex>` fallback index is read) behind
 * a counting proxy. Proves: once the API has answered 404, the next listing sends the API request and the fallback
 * read at once (both in flight before either is answered; one round trip less per image verification); the listing
 * is the same with and without the hint; and a registry that gains the API is answered from the API, the early
 * fallback read is dropped and the hint is cleared (the next listing asks the API alone again).
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  attachSigstoreBundle,
  buildImageLayout,
  RegistryClient,
  type ReferrersHint,
  type ReferrersResult,
} from '../src/index.js';
import {
  registryProblem,
  startCountingProxy,
  startRegistry,
  toolsAvailable,
  type CountingProxy,
  type RunningRegistry,
} from '@airlock/testkit';
import { removeDir, tempDir } from './helpers.js';

const available = toolsAvailable('referrers hint tests', [registryProblem()]);
const REPO = 'acme/hinted';

describe.skipIf(!available)('listReferrers with a ReferrersHint (docker-registry, no referrers API)', () => {
  let dir: string;
  let registry: RunningRegistry;
  let proxy: CountingProxy;
  let api = false;
  let digest: string;

  beforeAll(async () => {
    dir = tempDir();
    registry = await startRegistry(join(dir, 'reg'));
    proxy = await startCountingProxy(registry.url, { referrersApi: () => api });
    const direct = new RegistryClient({ url: registry.url });
    const image = await buildImageLayout(
      { files: [{ path: 'hello', bytes: 'hinted\n' }], architecture: 'amd64', os: 'linux' },
      join(dir, 'layout'),
    );
    digest = (await direct.pushLayout(image.layoutDir, `${registry.host}/${REPO}:v1`)).digest;
    // Unverified bundle bytes are enough here: only the listing is under test.
    const bundle = {
      mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
      messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: '' }, signature: 'c2ln' },
      verificationMaterial: { publicKey: { hint: 'k' }, tlogEntries: [] },
    };
    await attachSigstoreBundle(direct, REPO, { subject: digest, bundle });
  }, 120_000);
  afterAll(async () => {
    await proxy?.close();
    await registry?.stop();
    if (dir) removeDir(dir);
  });

  const client = (hint?: ReferrersHint): RegistryClient =>
    new RegistryClient({ url: proxy.url, ...(hint ? { referrersHint: hint } : {}) });
  const fallbackPath = (): string => `GET /v2/${REPO}/manifests/sha256-${digest.slice(7)}`;
  const apiPath = (): string => `GET /v2/${REPO}/referrers/${digest}`;

  it('after a 404 from the API, the next listing has the API request and the fallback read in flight at once', async () => {
    const hint: ReferrersHint = { apiAbsent: false };
    const first = await client(hint).listReferrers(REPO, digest);
    expect(first.source).toBe('fallback');
    expect(hint.apiAbsent).toBe(true);
    proxy.reset();
    proxy.hold(true);
    try {
      const pending = client(hint).listReferrers(REPO, digest);
      pending.catch(() => undefined); // fails when the held requests are dropped below
      // Nothing has been answered: both were sent before any reply (without the hint: the API request alone).
      await vi.waitFor(() => expect(proxy.held()).toBe(2), { timeout: 5_000 });
      expect([...proxy.requests].sort()).toEqual([apiPath(), fallbackPath()].sort());
    } finally {
      proxy.hold(false);
      await proxy.close();
      proxy = await startCountingProxy(registry.url, { referrersApi: () => api });
    }
  });

  it('lists the same referrers, from the same source, with and without the hint', async () => {
    const without = await client().listReferrers(REPO, digest);
    const hint: ReferrersHint = { apiAbsent: true };
    const withHint: ReferrersResult = await client(hint).listReferrers(REPO, digest);
    expect(withHint).toEqual(without);
    expect(withHint.source).toBe('fallback');
    expect(withHint.descriptors).toHaveLength(1);
  });

  it('a registry that gained the API: its answer is used, the early fallback read dropped, the hint cleared', async () => {
    api = true;
    try {
      const hint: ReferrersHint = { apiAbsent: true };
      proxy.reset();
      const r = await client(hint).listReferrers(REPO, digest);
      expect(r.source).toBe('api');
      expect(r.descriptors).toHaveLength(1);
      expect(hint.apiAbsent).toBe(false);
      expect(proxy.requests).toContain(apiPath());
      proxy.reset();
      await client(hint).listReferrers(REPO, digest);
      expect(proxy.requests).toEqual([apiPath()]);
    } finally {
      api = false;
    }
  });
});
