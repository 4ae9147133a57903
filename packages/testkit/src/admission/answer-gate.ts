/**
 * A loopback HTTP proxy in front of a real registry that forwards every request at once but can hold the ANSWERS
 * to chosen requests: the registry has already read its state (say, what a tag names) when the answer is held,
 * so a test can move the tag while that old answer is still on its way back. Counts requests by `METHOD /path`.
 * Callers must `close()` it.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';

export interface AnswerGate {
  /** `127.0.0.1:<port>`, as in image references. */
  host: string;
  /** Every request seen, `METHOD /path` (query string dropped), in order. */
  requests: string[];
  /** Answers to requests matching `match` (`METHOD /path`) are held from now on, until release(). */
  hold(match: (request: string) => boolean): void;
  /** Resolves when an answer has been received from the registry and held. */
  nextHeld(): Promise<string>;
  /** Stops holding and sends every held answer. */
  release(): void;
  close(): Promise<void>;
}

interface Held {
  res: ServerResponse;
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

export async function startAnswerGate(upstream: string): Promise<AnswerGate> {
  const target = new URL(upstream);
  const requests: string[] = [];
  let match: ((r: string) => boolean) | undefined;
  const held: Held[] = [];
  const waiting: ((r: string) => void)[] = [];
  const answer = (h: Held): void => {
    h.res.writeHead(h.status, h.headers);
    h.res.end(h.body);
  };
  const server = createServer((req, res) => {
    const what = `${req.method} ${(req.url ?? '/').split('?')[0]!}`;
    requests.push(what);
    const up = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upRes) => {
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          const h = { res, status: upRes.statusCode ?? 502, headers: upRes.headers, body: Buffer.concat(chunks) };
          if (match?.(what) !== true) return answer(h);
          held.push(h);
          waiting.shift()?.(what);
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    requests,
    hold: (m) => {
      match = m;
    },
    nextHeld: () => new Promise((resolve) => waiting.push(resolve)),
    release: () => {
      match = undefined;
      for (const h of held.splice(0)) answer(h);
    },
    close: async () => {
      for (const h of held.splice(0)) h.res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
