/**
 * `--store s3://bucket/prefix` on the mirror commands, the paths that need no object store: which flag is missing or
 * misplaced is a usage error (exit 2), so is a config without credentials, an unreachable endpoint exits 3, and no
 * message carries the secret. (Import, serve and fsck against a real radosgw: import-crash and mirror-npm-pip.)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MirrorStore } from '@airlock/cas';
import { runCli } from './helpers/cli.js';

let root: string;
let index: string;
let closedPort: number;
const SECRET = 'cli-test-secret-must-not-appear';
const NO_AWS_ENV = {
  AWS_ENDPOINT_URL: '',
  AWS_ACCESS_KEY_ID: '',
  AWS_SECRET_ACCESS_KEY: '',
  AWS_SESSION_TOKEN: '',
};

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'airlock-s3-cli-'));
  index = join(root, 'index');
  await (await MirrorStore.open(index)).close(); // an index directory (with an empty local blob dir, unused here)
  closedPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function fsckJson(args: string[], env: NodeJS.ProcessEnv = NO_AWS_ENV) {
  const r = await runCli(['mirror', 'fsck', ...args, '--json'], { env });
  const json = JSON.parse(r.stdout) as { ok: boolean; error?: { code: string; message: string } };
  return { code: r.code, json, all: r.stdout + r.stderr };
}

describe('mirror commands with --store s3://…', () => {
  it('needs --index; --index and --s3-config only go with an s3:// store', async () => {
    const noIndex = await fsckJson(['--store', 's3://mirror/p']);
    expect(noIndex.code).toBe(2);
    expect(noIndex.json.error?.message).toMatch(/needs --index/);
    const dirWithIndex = await fsckJson(['--store', index, '--index', index]);
    expect(dirWithIndex.code).toBe(2);
    expect(dirWithIndex.json.error?.message).toMatch(/--index is only for --store s3:/);
    const missingIndex = await fsckJson(['--store', 's3://mirror/p', '--index', join(root, 'nope')]);
    expect(missingIndex.code).toBe(2);
    expect(missingIndex.json.error?.message).toMatch(/no mirror index/);
    const badUrl = await fsckJson(['--store', 's3://Bad_Bucket/p', '--index', index]);
    expect(badUrl.code).toBe(2);
  });

  it('no credentials, or a config file with an unknown field, is a usage error naming the fix', async () => {
    const none = await fsckJson(['--store', 's3://mirror/p', '--index', index]);
    expect(none.code).toBe(2);
    expect(none.json.error?.message).toMatch(/AWS_ACCESS_KEY_ID/);
    const conf = join(root, 'typo.json');
    writeFileSync(conf, JSON.stringify({ secretKey: SECRET }));
    const typo = await fsckJson(['--store', 's3://mirror/p', '--index', index, '--s3-config', conf]);
    expect(typo.code).toBe(2);
    expect(typo.json.error?.message).toMatch(/unknown field 'secretKey'/);
    expect(typo.all).not.toContain(SECRET);
  });

  it('an unreachable object store exits 3 with S3_UNREACHABLE, from the environment or a config file', async () => {
    const env = {
      ...NO_AWS_ENV,
      AWS_ENDPOINT_URL: `http://127.0.0.1:${closedPort}`,
      AWS_ACCESS_KEY_ID: 'AK',
      AWS_SECRET_ACCESS_KEY: SECRET,
    };
    const viaEnv = await fsckJson(['--store', 's3://mirror/p', '--index', index], env);
    expect(viaEnv.code).toBe(3);
    expect(viaEnv.json.error?.code).toBe('S3_UNREACHABLE');
    expect(viaEnv.all).not.toContain(SECRET);
    const conf = join(root, 's3.json');
    writeFileSync(
      conf,
      JSON.stringify({ endpoint: `http://127.0.0.1:${closedPort}`, accessKeyId: 'AK', secretAccessKey: SECRET }),
    );
    const viaFile = await fsckJson(['--store', 's3://mirror/p', '--index', index, '--s3-config', conf]);
    expect(viaFile.code).toBe(3);
    expect(viaFile.json.error?.code).toBe('S3_UNREACHABLE');
    expect(viaFile.all).not.toContain(SECRET);
  });
});
