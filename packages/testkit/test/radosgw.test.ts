import { createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, radosgwProblem, startRadosgw, toolsAvailable, type RunningRadosgw } from '@airlock/testkit';

const enabled = toolsAvailable('radosgw fixture tests (real Ceph)', [radosgwProblem()]);

/** Holds a loopback port the way any other process on a busy CI machine might, between our probe and the bind. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

describe.runIf(enabled)('startRadosgw', () => {
  let rgw: RunningRadosgw | undefined;
  const held: Server[] = [];
  afterAll(async () => {
    await rgw?.stop();
    for (const s of held) s.close();
  });

  it('starts over on fresh ports when another process took the monitor port before it bound it', async () => {
    const taken = await holdPort();
    held.push(taken.server);
    const handedOut: number[][] = [];
    rgw = await startRadosgw({
      monPorts: async () => {
        // The first cluster gets the taken port (the race CI hit); later ones get free ports as usual.
        const ports: [number, number] =
          handedOut.length === 0 ? [taken.port, await freePort()] : [await freePort(), await freePort()];
        handedOut.push(ports);
        return ports;
      },
    });
    expect(handedOut.length).toBe(2);
    const res = await fetch(rgw.endpoint);
    expect(res.status).toBe(200);
  });
});
