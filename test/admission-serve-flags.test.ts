/**
 * `airlock admission serve --tag-ttl` through the built CLI: a value that is not a duration, or longer than an hour,
 * is a usage error (exit 2, `--json` names the flag) before anything is loaded or bound; so is a `--cosign-layers`
 * other than `always` or `when-needed`.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

const serve = (ttl: string, more: string[] = []) =>
  runCli([
    ...['admission', 'serve', '--policy', 'no-such-policy.yaml', '--trusted-root', 'no-such-root.json'],
    ...['--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--listen', '127.0.0.1:0', '--json', '--tag-ttl', ttl],
    ...more,
  ]);

describe('airlock admission serve --tag-ttl', () => {
  for (const bad of ['-1', 'soon', '3601', '2h'])
    it(`--tag-ttl ${bad}: exit 2 naming the flag`, async () => {
      const r = await serve(bad);
      expect(r.code, r.stderr).toBe(2);
      const out = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string } };
      expect(out.ok).toBe(false);
      expect(out.error.message).toContain(`--tag-ttl '${bad}'`);
    });

  it('a valid --tag-ttl gets past flag parsing (then the missing policy file is the error)', async () => {
    const r = await serve('5');
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('no-such-policy.yaml');
    expect(r.stdout).not.toContain('--tag-ttl');
  });
});

describe('airlock admission serve --cosign-layers', () => {
  for (const bad of ['never', 'ALWAYS', ''])
    it(`--cosign-layers '${bad}': exit 2 naming the flag`, async () => {
      const r = await serve('0', ['--cosign-layers', bad]);
      expect(r.code, r.stderr).toBe(2);
      const out = JSON.parse(r.stdout) as { ok: boolean; error: { code: string; message: string } };
      expect(out.ok).toBe(false);
      expect(out.error.message).toContain(`--cosign-layers '${bad}'`);
    });

  for (const good of ['always', 'when-needed'])
    it(`--cosign-layers ${good} gets past flag parsing (then the missing policy file is the error)`, async () => {
      const r = await serve('0', ['--cosign-layers', good]);
      expect(r.code).toBe(2);
      expect(r.stdout).toContain('no-such-policy.yaml');
      expect(r.stdout).not.toContain('--cosign-layers');
    });
});
