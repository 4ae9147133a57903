/**
 * The plane mounts its TSA: a plane.json recorded before the TSA existed (no `tsa` port) still starts and gets a
 * TSA port recorded; endpoints.json names the TSA and signing_config.json; the TSA key is 0600, and a
 * group-readable TSA key stops the plane with TSA_KEY_PERMISSIONS.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freeLoopbackPort } from '@airlock/core';
import { startTrustPlane } from '../src/index.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/**
 * A plane started on a pre-TSA plane.json recording just-released ports. Nothing reserves them: when another process
 * took one meanwhile (the plane refuses with PLANE_PORT_IN_USE, as it must), the test records fresh ones and tries
 * again, as the testkit fixtures do.
 */
async function startOnRecordedPorts(dir: string) {
  for (let attempt = 1; ; attempt++) {
    const recorded = {
      tlog: await freeLoopbackPort(),
      ca: await freeLoopbackPort(),
      identity: await freeLoopbackPort(),
    };
    writeFileSync(
      join(dir, 'plane.json'),
      JSON.stringify({ createdAt: new Date().toISOString(), host: '127.0.0.1', ports: recorded }),
      { mode: 0o600 },
    );
    try {
      return { recorded, plane: await startTrustPlane({ dataDir: dir }) };
    } catch (err) {
      if ((err as { code?: string }).code !== 'PLANE_PORT_IN_USE' || attempt === 5) throw err;
    }
  }
}

describe('trust plane with its TSA', () => {
  it('starts from a pre-TSA plane.json, records a TSA port, writes signing_config.json; TSA key 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-plane-tsa-'));
    dirs.push(dir);
    const { recorded, plane } = await startOnRecordedPorts(dir);
    try {
      const state = JSON.parse(readFileSync(join(dir, 'plane.json'), 'utf8')) as { ports: Record<string, number> };
      expect(state.ports).toMatchObject(recorded);
      expect(state.ports.tsa).toBe(Number(new URL(plane.endpoints.tsaUrl!).port));
      expect(plane.endpoints.signingConfig).toBe(join(dir, 'signing_config.json'));
      const cfg = JSON.parse(readFileSync(plane.endpoints.signingConfig!, 'utf8')) as {
        tsaUrls: Array<{ url: string }>;
      };
      expect(cfg.tsaUrls[0]!.url).toBe(`${plane.endpoints.tsaUrl}/api/v1/timestamp`);
      expect(statSync(join(dir, 'tsa', 'tsa-key.pem')).mode & 0o777).toBe(0o600);
      const chain = await fetch(`${plane.endpoints.tsaUrl}/api/v1/timestamp/certchain`);
      expect(chain.status).toBe(200);
    } finally {
      await plane.close();
    }
    chmodSync(join(dir, 'tsa', 'tsa-key.pem'), 0o640);
    const err = await startTrustPlane({ dataDir: dir }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('TSA_KEY_PERMISSIONS');
    expect((err as Error).message).toMatch(/tsa-key\.pem is readable by group\/others/);
  });
});
