import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/**
 * A loopback "upstream" for the sync job: routes by exact path (query ignored), counts hits per path and the
 * number of requests in flight (current and maximum), so tests can check retries, dedupe and concurrency.
 */
export interface Upstream {
  url: string;
  route(path: string, handler: Handler): void;
  file(path: string, body: Buffer | string, contentType?: string): void;
  hits(path: string): number;
  totalHits(): number;
  maxInFlight: number;
  inFlight: number;
  resetCounters(): void;
  close(): Promise<void>;
}

export async function startUpstream(): Promise<Upstream> {
  const routes = new Map<string, Handler>();
  const hits = new Map<string, number>();
  const state = { inFlight: 0, maxInFlight: 0 };
  const server = createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '/').split('?')[0]!);
    hits.set(path, (hits.get(path) ?? 0) + 1);
    state.inFlight++;
    state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
    res.on('close', () => state.inFlight--);
    const h = routes.get(path);
    if (!h) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    Promise.resolve(h(req, res)).catch((err: unknown) => {
      res.destroy(err as Error);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const up: Upstream = {
    url: `http://127.0.0.1:${port}`,
    route: (path, handler) => void routes.set(path, handler),
    file: (path, body, contentType = 'application/octet-stream') =>
      void routes.set(path, (_req, res) => {
        res.setHeader('content-type', contentType);
        res.end(body);
      }),
    hits: (path) => hits.get(path) ?? 0,
    totalHits: () => [...hits.values()].reduce((a, b) => a + b, 0),
    get maxInFlight() {
      return state.maxInFlight;
    },
    get inFlight() {
      return state.inFlight;
    },
    resetCounters: () => {
      hits.clear();
      state.maxInFlight = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return up;
}

/**
 * The only fetch tests hand to syncToBundle: anything but loopback is a test bug (a default pointing at a public
 * registry), and must fail instead of quietly reaching the network.
 */
export const loopbackFetch: typeof fetch = async (input, init) => {
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  if (url.hostname !== '127.0.0.1') throw new Error(`test tried to reach a non-loopback host: ${url.href}`);
  return fetch(input, init);
};
