/** Shared by the server tests: an HTTPS client trusting the test CA, AdmissionReview builders, a raw TLS socket. */
import { request } from 'node:https';
import { connect, type TLSSocket } from 'node:tls';
import type { AdmissionRequest, AdmissionReview } from '../src/types.js';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: () => unknown;
}

export function call(
  url: string,
  ca: Buffer,
  path: string,
  options: { method?: string; body?: string | Buffer; headers?: Record<string, string> } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      {
        method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
        ca,
        headers: options.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) as unknown });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

export const postJson = (url: string, ca: Buffer, path: string, body: unknown): Promise<Reply> =>
  call(url, ca, path, { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

let n = 0;
export function podReview(images: string[], overrides: Partial<AdmissionRequest> = {}): AdmissionReview {
  const request: AdmissionRequest = {
    uid: `uid-${++n}-0000-0000-0000-000000000000`,
    kind: { group: '', version: 'v1', kind: 'Pod' },
    resource: { group: '', version: 'v1', resource: 'pods' },
    namespace: 'apps',
    operation: 'CREATE',
    object: {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'apps' },
      spec: { containers: images.map((image, i) => ({ name: `c${i}`, image })) },
    },
    ...overrides,
  };
  return { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request };
}

export function responseOf(reply: Reply): NonNullable<AdmissionReview['response']> {
  const review = reply.json() as AdmissionReview;
  if (review.apiVersion !== 'admission.k8s.io/v1' || review.kind !== 'AdmissionReview' || !review.response)
    throw new Error(`not an AdmissionReview response: ${reply.status} ${reply.text.slice(0, 300)}`);
  return review.response;
}

/** A raw TLS connection: lets a test send headers and part of a body, then read what the server answers. */
export async function rawTls(url: string, ca: Buffer): Promise<{ socket: TLSSocket; received: () => Promise<string> }> {
  const u = new URL(url);
  const socket = connect({ host: u.hostname, port: Number(u.port), ca, servername: undefined });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  let data = '';
  socket.on('data', (d: Buffer) => (data += d.toString('utf8')));
  const received = (): Promise<string> =>
    new Promise((resolve) => {
      const done = (): void => resolve(data);
      socket.once('close', done);
      socket.once('error', done);
    });
  return { socket, received };
}
