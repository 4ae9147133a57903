/**
 * Rotation schedule and SVID files (issue 10 §3): re-fetch at about half of the remaining lifetime, retry within
 * the old SVID's lifetime, files written with the key 0600 and replaced (never appended to or half-written).
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createSvidCa, issueX509Svid } from '@airlock/ca';
import { svidRefreshDelayMs, svidRetryDelayMs, writeX509SvidFiles, type X509Svid } from '@airlock/identity';

const dir = mkdtempSync(join(tmpdir(), 'airlock-svid-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('svidRefreshDelayMs / svidRetryDelayMs', () => {
  const now = 1_800_000_000_000;
  it('re-fetches at half of what is left, never sooner than 500 ms', () => {
    expect(svidRefreshDelayMs({ expires_at: now / 1000 + 3600 }, now)).toBe(1_800_000);
    expect(svidRefreshDelayMs({ expires_at: now / 1000 + 6 }, now)).toBe(3_000);
    expect(svidRefreshDelayMs({ expires_at: now / 1000 - 10 }, now)).toBe(500); // already expired: at once
  });
  it('retries a failed fetch within the current SVID (a quarter of what is left, at most 30 s)', () => {
    expect(svidRetryDelayMs({ expires_at: now / 1000 + 8 }, now)).toBe(2_000);
    expect(svidRetryDelayMs({ expires_at: now / 1000 + 3600 }, now)).toBe(30_000);
    expect(svidRetryDelayMs(undefined, now)).toBe(2_000);
  });
});

describe('writeX509SvidFiles', () => {
  it('refuses an SVID without a key (the workload kept its own)', () => {
    const svid: X509Svid = {
      spiffe_id: 'spiffe://example.org/w',
      x509_svid: Buffer.alloc(0),
      bundle: Buffer.alloc(0),
      hint: '',
      expires_at: 0,
    };
    expect(() => writeX509SvidFiles(join(dir, 'none'), svid)).toThrow(/carries no key/);
  });

  it('replaces a leftover temporary file and an older SVID, and leaves the key 0600', async () => {
    const out = join(dir, 'out');
    const ca = await createSvidCa({ trustDomain: 'example.org' });
    writeX509SvidFiles(out, await issueX509Svid({ ca, spiffeId: 'spiffe://example.org/w', ttlSeconds: 60 }));
    const svid = await issueX509Svid({ ca, spiffeId: 'spiffe://example.org/w', ttlSeconds: 60 });
    writeFileSync(join(out, `svid-key.pem.tmp-${process.pid}`), 'stale', { mode: 0o644 });
    const files = writeX509SvidFiles(out, svid);
    expect(statSync(files.key).mode & 0o777).toBe(0o600);
    expect(statSync(files.json).mode & 0o777).toBe(0o600);
    expect(readFileSync(files.key, 'utf8')).toContain('BEGIN PRIVATE KEY');
    expect(JSON.parse(readFileSync(files.json, 'utf8'))).toMatchObject({
      x509_svid: svid.x509_svid.toString('base64'),
    });
    expect(statSync(out).mode & 0o777).toBe(0o700);
  });
});
