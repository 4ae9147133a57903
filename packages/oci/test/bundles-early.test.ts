/**
 * readSigstoreBundles' onBundle, against a real docker-registry: each bundle is handed over as soon as it has been
 * read and checked, while the other referrers are still being read (an image verifier starts checking it then),
 * and the result is the same list, in listing order. One bundle blob read is gated in the client (a registry
 * answering it late) so "while the others are still being read" is observable without timing.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  attachSigstoreBundle,
  buildImageLayout,
  readSigstoreBundles,
  RegistryClient,
  type FetchedBundle,
} from '../src/index.js';
import { registryProblem, startRegistry, toolsAvailable, type RunningRegistry } from '@airlock/testkit';
import { removeDir, tempDir } from './helpers.js';

const available = toolsAvailable('onBundle tests', [registryProblem()]);
const REPO = 'acme/early';

/** A client whose read of one blob waits until release() (every other read goes straight to the registry). */
class GatedClient extends RegistryClient {
  gated: string | undefined;
  private open!: () => void;
  readonly gate = new Promise<void>((resolve) => (this.open = resolve));
  release(): void {
    this.open();
  }
  override async getBlob(
    repo: string,
    digest: string,
    options?: { maxBytes?: number; expectedSize?: number },
  ): Promise<Buffer> {
    if (digest === this.gated) await this.gate;
    return super.getBlob(repo, digest, options);
  }
}

const bundleOf = (signature: string): object => ({
  mediaType: 'application/vnd.dev.sigstore.bundle.v0.3+json',
  messageSignature: { messageDigest: { algorithm: 'SHA2_256', digest: '' }, signature },
  verificationMaterial: { publicKey: { hint: 'k' }, tlogEntries: [] },
});

describe.skipIf(!available)('readSigstoreBundles onBundle (docker-registry)', () => {
  let dir: string;
  let registry: RunningRegistry;
  let digest: string;

  beforeAll(async () => {
    dir = tempDir();
    registry = await startRegistry(join(dir, 'reg'));
    const direct = new RegistryClient({ url: registry.url });
    const image = await buildImageLayout(
      { files: [{ path: 'hello', bytes: 'early\n' }], architecture: 'amd64', os: 'linux' },
      join(dir, 'layout'),
    );
    digest = (await direct.pushLayout(image.layoutDir, `${registry.host}/${REPO}:v1`)).digest;
    // Unverified bundle bytes are enough here: only the reading is under test.
    for (const sig of ['b25l', 'dHdv', 'dGhyZWU='])
      await attachSigstoreBundle(direct, REPO, { subject: digest, bundle: bundleOf(sig) });
  }, 120_000);
  afterAll(async () => {
    await registry?.stop();
    if (dir) removeDir(dir);
  });

  it('hands over each bundle while another is still being read; same list, in listing order', async () => {
    const plain = await readSigstoreBundles(new RegistryClient({ url: registry.url }), REPO, digest);
    expect(plain).toHaveLength(3);
    const client = new GatedClient({ url: registry.url });
    const last = plain[2]!.bundle as { messageSignature: { signature: string } };
    // The last referrer's blob: found from its manifest (the bundle layer's digest).
    const manifest = JSON.parse((await client.getManifest(REPO, plain[2]!.manifestDigest)).bytes.toString('utf8')) as {
      layers: { digest: string }[];
    };
    client.gated = manifest.layers[0]!.digest;
    const handed: FetchedBundle[] = [];
    let settled = false;
    const reading = readSigstoreBundles(client, REPO, digest, { onBundle: (b) => handed.push(b) });
    void reading.finally(() => (settled = true));
    // The two ungated bundles arrive while the gated read is pending: handed over before the list is complete.
    await expect.poll(() => handed.length, { timeout: 10_000 }).toBe(2);
    expect(settled).toBe(false);
    expect(handed.map((b) => (b.bundle as typeof last).messageSignature.signature)).not.toContain(
      last.messageSignature.signature,
    );
    client.release();
    const all = await reading;
    expect(handed).toHaveLength(3);
    // The very objects handed over, in listing order, equal to a read without onBundle.
    expect(new Set(all)).toEqual(new Set(handed));
    expect(all.map((b) => b.manifestDigest)).toEqual(plain.map((b) => b.manifestDigest));
    expect(all.map((b) => b.bytes)).toEqual(plain.map((b) => b.bytes));
  });
});
