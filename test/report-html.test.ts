/**
 * `airlock report` through the built CLI, opened in real headless Chromium. Real artifacts as in
 * verify-policy-cli.test.ts (real trust plane on loopback; provenance/SBOM from the runner's builders signed as the
 * runner; a sync-signed snapshot). Proves: the page renders offline with no console errors and loads nothing (a
 * CSP meta forbids every fetch; no src/href names a URL), the verdict, the commit, the snapshot id with its sync
 * signer, the log entries and every rule's result are visible text in the rendered DOM; attacker-controlled
 * provenance values (`<script>`, `<img onerror>`) render as text and never execute; the Markdown summary names the
 * same rules. A screenshot is written for a person to look at. Skips (printing why) without chromium unless
 * AIRLOCK_REQUIRE_TOOLS=1.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toolsAvailable } from '@airlock/testkit';
import {
  ARTIFACT,
  attest,
  COMMIT,
  provenanceInput,
  provenanceOf,
  sbomOf,
  startWorld,
  type World,
} from './helpers/policy-world.js';
import { runCli } from './helpers/cli.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
const enabled = toolsAvailable('the HTML report in headless Chromium', [
  CHROMIUM ? undefined : 'chromium is not installed (/usr/bin/chromium)',
]);

const XSS_REPO = `https://git.corp.example/acme/app.git?x=<script>document.title='pwned'</script>`;
const XSS_REF = `refs/tags/v1.4.2"><img src=x onerror="document.title='pwned'">`;

let w: World;
let work: string;
let data: string;
let policyPath: string;
let snapDir: string;

/** Runs headless Chromium once with a fresh profile; resolves with its stdout and stderr. */
function chromium(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'airlock-chromium-'));
  const argv = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--enable-logging=stderr',
    '--v=0',
    `--user-data-dir=${profile}`,
    ...args,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(CHROMIUM!, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      rmSync(profile, { recursive: true, force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

async function artifactWith(name: string, o: { repo?: string; ref?: string }): Promise<string> {
  const file = join(work, name);
  writeFileSync(file, ARTIFACT);
  const input = provenanceInput(w, { ...o, finishedOn: new Date().toISOString() });
  const prov = await attest(w, w.signers.runner, provenanceOf(input), 'p');
  const sbom = await attest(w, w.signers.runner, sbomOf(input), 's');
  writeFileSync(`${file}.provenance.sigstore.json`, JSON.stringify(prov.bundle));
  writeFileSync(`${file}.sbom.sigstore.json`, JSON.stringify(sbom.bundle));
  return file;
}

beforeAll(async () => {
  if (!enabled) return;
  w = await startWorld(4);
  work = join(w.dir, 'work');
  data = join(w.dir, 'plane');
  mkdirSync(join(work, 'snapshot', 'attestations'), { recursive: true });
  snapDir = join(work, 'snapshot');
  writeFileSync(join(snapDir, 'manifest.json'), w.snapshot.manifestBytes);
  writeFileSync(join(snapDir, 'attestations', 'manifest.sigstore.json'), JSON.stringify(w.snapshot.bundle));
  policyPath = join(work, 'release.policy.yaml');
  writeFileSync(
    policyPath,
    `apiVersion: airlock.dev/policy/v1
name: acme-app release
authorities:
  runner: { keyless: { subject: '${w.ids.runner}', issuer: '${w.issuer}' } }
  mirror-sync: { keyless: { subject: '${w.ids.sync}', issuer: '${w.issuer}' } }
provenance:
  authorities: [runner]
  builderIds: ['${w.ids.runner}']
  buildTypes: [https://airlock.dev/buildtypes/hermetic/v1]
  source: { uris: ['https://git.corp.example/acme/*.git'], refs: { semverTags: '>=1.0.0 <2.0.0' } }
  reproducible: true
  maxAge: 30d
dependencies: { syncAuthorities: [mirror-sync] }
sbom: { authorities: [runner] }
`,
  );
}, 120_000);

afterAll(async () => {
  await w?.close();
});

const visibleText = (dom: string): string =>
  dom
    .replace(/<style[\s\S]*?<\/style>/g, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&amp;/g, '&')
    .replace(/\s+/g, ' ');

describe.runIf(enabled)('airlock report in headless Chromium', () => {
  it('renders the chain and every rule as visible text, offline, without console errors', async () => {
    const file = await artifactWith('app.tgz', {});
    const html = join(work, 'report.html');
    const md = join(work, 'report.md');
    const r = await runCli([
      'report',
      file,
      '--policy',
      policyPath,
      '--data',
      data,
      '--snapshot',
      snapDir,
      '--html',
      html,
      '--md',
      md,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const source = readFileSync(html, 'utf8');
    expect(source).toContain(`content="default-src 'none'; style-src 'unsafe-inline'`);
    expect(source).not.toMatch(/<script|<link|<img|<iframe/i);
    expect(source).not.toMatch(/\b(?:src|href)\s*=\s*["']?(?:https?:|\/\/)/i);

    const dom = await chromium(['--dump-dom', `file://${html}`]);
    expect(dom.code, dom.stderr).toBe(0);
    expect(dom.stderr).not.toMatch(/CONSOLE|Refused to|Uncaught/);
    const text = visibleText(dom.stdout);
    expect(text).toContain('PASS app.tgz');
    expect(text).toContain(COMMIT);
    expect(text).toContain(w.snapshot.manifest.snapshot.id);
    expect(text).toContain(w.ids.sync);
    expect(text).toContain('inclusion proof verified');
    const verdict = JSON.parse(
      (
        await runCli([
          'verify',
          'artifact',
          file,
          '--policy',
          policyPath,
          '--data',
          data,
          '--snapshot',
          snapDir,
          '--json',
        ])
      ).stdout,
    ) as { rules: { rule: string; passed: boolean }[] };
    expect(verdict.rules.length).toBeGreaterThan(10);
    for (const rule of verdict.rules)
      expect(text).toMatch(new RegExp(`✓ ${rule.rule.replace(/[.[\]]/g, '\\$&')} passed`));
    const summary = readFileSync(md, 'utf8');
    for (const rule of verdict.rules)
      expect(summary).toContain(`| ✓ | ${rule.rule.replace(/[[\]_]/g, (c) => `\\${c}`)} |`);

    const png = join(work, 'report.png');
    const shot = await chromium(['--window-size=1280,1600', `--screenshot=${png}`, `file://${html}`]);
    expect(shot.code, shot.stderr).toBe(0);
    expect(statSync(png).size).toBeGreaterThan(10_000);
    if (process.env.AIRLOCK_REPORT_SCREENSHOT) writeFileSync(process.env.AIRLOCK_REPORT_SCREENSHOT, readFileSync(png));
  }, 120_000);

  it('attacker-controlled provenance values render as text and never run (FAIL report still written)', async () => {
    const file = await artifactWith('evil.tgz', { repo: XSS_REPO, ref: XSS_REF });
    const html = join(work, 'evil.html');
    const r = await runCli([
      'report',
      file,
      '--policy',
      policyPath,
      '--data',
      data,
      '--snapshot',
      snapDir,
      '--html',
      html,
    ]);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const source = readFileSync(html, 'utf8');
    expect(source).not.toMatch(/<script|<img/i);
    const dom = await chromium(['--dump-dom', `file://${html}`]);
    expect(dom.code, dom.stderr).toBe(0);
    expect(dom.stdout).not.toMatch(/<script|<img/i);
    expect(dom.stdout).toMatch(/<title>FAIL evil\.tgz/);
    expect(dom.stdout).not.toContain('pwned</title>');
    const text = visibleText(dom.stdout);
    expect(text).toContain(`<script>document.title='pwned'</script>`);
    expect(text).toContain('✗ provenance.source.uri FAILED');
    expect(text).toContain('✗ provenance.source.ref FAILED');
    const png = join(work, 'evil.png');
    const shot = await chromium(['--window-size=1280,1600', `--screenshot=${png}`, `file://${html}`]);
    expect(shot.code, shot.stderr).toBe(0);
    expect(shot.stderr).not.toMatch(/CONSOLE|Refused to|Uncaught/);
    if (process.env.AIRLOCK_REPORT_SCREENSHOT)
      writeFileSync(`${process.env.AIRLOCK_REPORT_SCREENSHOT}.fail.png`, readFileSync(png));
  }, 120_000);
});
