import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AirlockError } from '@airlock/core';
import { readEndpoints } from '@airlock/plane';
import { classifyExit, EXIT, isServiceUnavailable, UsageError } from '../src/output.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A loopback port nothing listens on: bound once for a free number, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The error a real connect() gives. */
async function connectError(options: { port: number; host: string } | { path: string }): Promise<Error> {
  const socket = connect(options);
  const [err] = (await once(socket, 'error').catch((e: unknown) => [e])) as [Error];
  socket.destroy();
  return err;
}

describe('classifyExit: which failures mean "a service cannot be reached" (exit 3)', () => {
  it('a real fetch to a closed loopback port (TypeError "fetch failed", ECONNREFUSED in its cause chain) is 3', async () => {
    const port = await closedPort();
    const err = await fetch(`http://127.0.0.1:${port}/`).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TypeError);
    expect(isServiceUnavailable(err)).toBe(true);
    expect(classifyExit(err, EXIT.FAILURE)).toBe(EXIT.UNAVAILABLE);
    expect(classifyExit(err, EXIT.USAGE)).toBe(EXIT.UNAVAILABLE);
  });

  it('a real connect() refused on TCP, and a connect() to a UNIX socket path that does not exist, are 3', async () => {
    const refused = await connectError({ port: await closedPort(), host: '127.0.0.1' });
    expect((refused as { code?: string }).code).toBe('ECONNREFUSED');
    expect(classifyExit(refused, EXIT.FAILURE)).toBe(EXIT.UNAVAILABLE);
    const dir = mkdtempSync(join(tmpdir(), 'airlock-cli-'));
    dirs.push(dir);
    const noSocket = await connectError({ path: join(dir, 'mirror.sock') });
    expect((noSocket as { code?: string }).code).toBe('ENOENT');
    expect(classifyExit(noSocket, EXIT.FAILURE)).toBe(EXIT.UNAVAILABLE);
  });

  it('network codes are found however deep they are wrapped; an AggregateError only when all of it is', () => {
    for (const code of ['ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT']) {
      const leaf = Object.assign(new Error(`low-level ${code}`), { code });
      const wrapped = new AirlockError('SIGN_FAILED', 'signing failed', {
        cause: new TypeError('fetch failed', { cause: leaf }),
      });
      expect(classifyExit(wrapped, 13)).toBe(EXIT.UNAVAILABLE);
    }
    // Every address refused (what net.connect reports for localhost's ::1 and 127.0.0.1): unreachable.
    const refused = (host: string): Error =>
      Object.assign(new Error(`connect ECONNREFUSED ${host}:80`), { code: 'ECONNREFUSED' });
    const allRefused = new AggregateError([refused('::1'), refused('127.0.0.1')], 'all addresses failed');
    expect(classifyExit(new Error('wrapper', { cause: allRefused }), EXIT.FAILURE)).toBe(EXIT.UNAVAILABLE);
    // A real failure among them (a digest mismatch) is not hidden by a network error next to it.
    const mixed = new AggregateError([new AirlockError('DIGEST_MISMATCH', 'sha256 differs'), refused('::1')]);
    expect(classifyExit(mixed, EXIT.FAILURE)).toBe(EXIT.FAILURE);
  });

  it('airlock codes named *_UNREACHABLE / *_UNAVAILABLE / *_NOT_RUNNING are 3, e.g. a data dir with no plane', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-cli-'));
    dirs.push(dir);
    let noPlane: unknown;
    try {
      readEndpoints(dir);
    } catch (e) {
      noPlane = e;
    }
    expect((noPlane as { code?: string }).code).toBe('PLANE_NOT_RUNNING');
    expect(classifyExit(noPlane, EXIT.USAGE)).toBe(EXIT.UNAVAILABLE);
    for (const code of ['TLOG_MONITOR_UNREACHABLE', 'RUNNER_MIRROR_UNAVAILABLE', 'RUNNER_REGISTRY_UNAVAILABLE'])
      expect(classifyExit(new AirlockError(code, 'down'), 1)).toBe(EXIT.UNAVAILABLE);
  });

  it('what is not a service being down keeps its meaning', () => {
    // A local schema file that cannot be loaded is not a service, despite its name.
    expect(classifyExit(new AirlockError('SBOM_SCHEMA_UNAVAILABLE', 'schema missing'), EXIT.FAILURE)).toBe(
      EXIT.FAILURE,
    );
    // Codes that merely look alike elsewhere: a Node error is judged by its errno, not the airlock naming rule.
    expect(classifyExit(Object.assign(new Error('x'), { code: 'ERR_SERVER_NOT_RUNNING' }), 1)).toBe(1);
    expect(classifyExit(new AirlockError('VERIFY_SIGNATURE_INVALID', 'bad signature'), EXIT.FAILURE)).toBe(1);
    expect(classifyExit(new Error('boom'), 10)).toBe(10);
    expect(classifyExit(Object.assign(new Error('no such file'), { code: 'ENOENT', syscall: 'open' }), 2)).toBe(2);
    expect(classifyExit('a string', 1)).toBe(1);
    expect(classifyExit(undefined, 1)).toBe(1);
  });

  it('a UsageError is 2 whatever fallback the caller passed', () => {
    expect(classifyExit(new UsageError('bad flag'), EXIT.FAILURE)).toBe(EXIT.USAGE);
    expect(classifyExit(new UsageError('bad flag'), 13)).toBe(EXIT.USAGE);
  });

  it('terminates on cause cycles', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(classifyExit(a, 1)).toBe(1);
  });
});
