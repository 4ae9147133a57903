/**
 * Fixtures start daemons on ports the kernel has just released (freePort). On a busy CI machine another process can
 * take such a port before the daemon binds it (stop 19's CI lost a test file to this with radosgw). Each fixture
 * must notice and move to a fresh port, and must never take the other process for its own daemon.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  freePort,
  nginxProblem,
  postgresProblem,
  radosgwProblem,
  startPostgres,
  startRadosgw,
  startStaticNginx,
  toolsAvailable,
} from '@airlock/testkit';

const held: Server[] = [];
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  for (const s of held) s.close();
});

async function listen(server: Server): Promise<number> {
  held.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

/** The first call gives `taken`, later calls fresh ports; `given` records what was handed out. */
function firstTaken(taken: number): { port: () => Promise<number>; given: number[] } {
  const given: number[] = [];
  return {
    given,
    port: async () => {
      const p = given.length === 0 ? taken : await freePort();
      given.push(p);
      return p;
    },
  };
}

describe.runIf(toolsAvailable('nginx fixture port race', [nginxProblem()]))('startStaticNginx', () => {
  it('does not take another HTTP server on its port for its nginx, and serves from a fresh port', async () => {
    const other = await listen(createHttpServer((_req, res) => res.end('not nginx')));
    const dir = mkdtempSync(join(tmpdir(), 'airlock-port-race-'));
    cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'checkpoint'), 'the served file\n');
    const ports = firstTaken(other);
    const nginx = await startStaticNginx(dir, '/api/v2/', { port: ports.port });
    cleanups.push(() => nginx.close());
    expect(ports.given.length).toBe(2);
    expect(nginx.url).toBe(`http://127.0.0.1:${ports.given[1]}`);
    expect(await (await fetch(`${nginx.url}/api/v2/checkpoint`)).text()).toBe('the served file\n');
  });
});

describe.runIf(toolsAvailable('PostgreSQL fixture port race', [postgresProblem()]))('startPostgres', () => {
  it('moves to a fresh port when its port is taken, and the server it returns accepts logins', async () => {
    const taken = await listen(createServer());
    const ports = firstTaken(taken);
    const pg = await startPostgres({ port: ports.port });
    cleanups.push(() => pg.stop());
    expect(ports.given.length).toBe(2);
    expect(pg.port).toBe(ports.given[1]);
    const db = await pg.createDatabase();
    expect(new URL(db.url).port).toBe(String(ports.given[1]));
  });
});

describe.runIf(toolsAvailable('radosgw fixture port race (real Ceph)', [radosgwProblem()]))('startRadosgw', () => {
  it('starts over on fresh ports when another process took the monitor port before it bound it', async () => {
    const taken = await listen(createServer());
    const handedOut: number[][] = [];
    const rgw = await startRadosgw({
      monPorts: async () => {
        const ports: [number, number] =
          handedOut.length === 0 ? [taken, await freePort()] : [await freePort(), await freePort()];
        handedOut.push(ports);
        return ports;
      },
    });
    cleanups.push(() => rgw.stop());
    expect(handedOut.length).toBe(2);
    expect((await fetch(rgw.endpoint)).status).toBe(200);
  });
});
