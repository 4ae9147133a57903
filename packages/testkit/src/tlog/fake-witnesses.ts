import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A misbehaving C2SP tlog-witness endpoint on 127.0.0.1 (an ephemeral port). */
export interface FakeWitness {
  url: string;
  /** add-checkpoint requests received so far. */
  requests(): number;
  close(): Promise<void>;
}

async function start(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<FakeWitness> {
  let requests = 0;
  const server: Server = createServer((req, res) => {
    requests++;
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/**
 * Answers every add-checkpoint with 200 and one cosignature line in the tlog-cosignature v1 format under the
 * witness's configured `name` and 4-byte `keyId` — but the signature is not from that key (random bytes), so a log
 * or monitor that checks cosignatures must drop it. Built from the format, not from airlock's note code.
 */
export function startForgingWitness(name: string, keyId: Buffer): Promise<FakeWitness> {
  if (keyId.length !== 4) throw new Error('a signed-note key ID is 4 bytes');
  return start((req, res) => {
    req.resume();
    req.on('end', () => {
      const time = Buffer.alloc(8);
      time.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000)));
      const sig = Buffer.concat([keyId, time, randomBytes(64)]);
      res.end(`\u2014 ${name} ${sig.toString('base64')}\n`);
    });
  });
}

/** Accepts add-checkpoint requests and never answers them (a log must not wait on it to acknowledge appends). */
export function startHangingWitness(): Promise<FakeWitness> {
  return start(() => undefined);
}
