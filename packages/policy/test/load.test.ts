/**
 * Policy loading: YAML or JSON, validated against schemas/policy.v1.schema.json plus the checks the schema cannot
 * express; every problem names the field; unknown keys are errors at every depth, never ignored.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadPolicyFile, parseDuration, parsePolicy, type PolicyError } from '../src/index.js';

const FIXTURE = fileURLToPath(new URL('../../../fixtures/policy/release.policy.yaml', import.meta.url));

const BASE = {
  apiVersion: 'airlock.dev/policy/v1',
  authorities: { runner: { keyless: { subject: 'spiffe://airlock.internal/runner/ci', issuer: 'https://issuer' } } },
  provenance: { authorities: ['runner'] },
};

function problemsOf(doc: unknown): string[] {
  try {
    parsePolicy(typeof doc === 'string' ? doc : JSON.stringify(doc), 'p.json');
  } catch (err) {
    const e = err as PolicyError;
    expect(e.code).toBe('POLICY_INVALID');
    return (e.details as { problems: string[] }).problems;
  }
  throw new Error('the policy was accepted');
}

describe('parsePolicy / loadPolicyFile', () => {
  it('loads the fixture policy (YAML), resolving relative paths against the file, digest over its bytes', () => {
    const p = loadPolicyFile(FIXTURE);
    expect(p.digest.sha256).toBe(createHash('sha256').update(readFileSync(FIXTURE)).digest('hex'));
    expect(p.uri).toMatch(/^file:\/\/.*\/fixtures\/policy\/release\.policy\.yaml$/);
    expect(p.document.trustedRoots).toEqual([
      fileURLToPath(new URL('../../../fixtures/policy/trusted_root.json', import.meta.url)),
    ]);
    expect(p.document.advisories!.osvDirectory).toBe(
      fileURLToPath(new URL('../../../fixtures/policy/osv', import.meta.url)),
    );
    expect(p.maxAgeSeconds).toBe(30 * 86_400);
    expect([...p.authorities.keys()]).toEqual(['runner', 'mirror-sync']);
  });

  it('reads the same policy as JSON', () => {
    const p = parsePolicy(JSON.stringify(BASE));
    expect(p.document.provenance!.authorities).toEqual(['runner']);
  });

  it('names the malformed field', () => {
    expect(problemsOf({ ...BASE, provenance: { authorities: ['runner'], builderIds: [42] } })).toEqual([
      'policy.provenance.builderIds[0]: must be string',
    ]);
    expect(problemsOf({ ...BASE, provenance: { authorities: ['runner'], maxAge: '3 days' } })).toEqual([
      'policy.provenance.maxAge: must match pattern "^([0-9]+[smhdw])+$"',
    ]);
    expect(problemsOf({ ...BASE, apiVersion: 'v2' })).toEqual([
      'policy.apiVersion: must be equal to constant "airlock.dev/policy/v1"',
    ]);
    expect(problemsOf({ ...BASE, provenance: { authorities: ['runner'], source: { commit: 'abc' } } })).toEqual([
      'policy.provenance.source.commit: must match pattern "^[0-9a-f]{40}$"',
    ]);
    expect(problemsOf({ apiVersion: 'airlock.dev/policy/v1' })).toEqual([
      "policy: must have required property 'authorities'",
    ]);
  });

  it('an unknown key is an error naming its path, at any depth', () => {
    expect(problemsOf({ ...BASE, provenanse: {} })).toEqual(['policy.provenanse: unknown field']);
    expect(problemsOf({ ...BASE, provenance: { authorities: ['runner'], buildrIds: ['x'] } })).toEqual([
      'policy.provenance.buildrIds: unknown field',
    ]);
    expect(
      problemsOf({ ...BASE, provenance: { authorities: ['runner'], source: { refs: { branch: ['main'] } } } }),
    ).toEqual(['policy.provenance.source.refs.branch: unknown field']);
    expect(
      problemsOf({ ...BASE, authorities: { runner: { keyless: { subject: 's', issuer: 'i', san: 'x' } } } }),
    ).toEqual(['policy.authorities.runner.keyless.san: unknown field']);
  });

  it('checks what the schema cannot: authority shape, references, regular expressions, semver ranges', () => {
    expect(
      problemsOf({
        ...BASE,
        authorities: { runner: { keyless: { subject: 's', subjectRegExp: 's.*', issuer: 'i' } } },
      }),
    ).toEqual(['policy.authorities.runner.keyless: give exactly one of subject, subjectRegExp']);
    expect(problemsOf({ ...BASE, authorities: { runner: { keyless: { subject: 's' } } } })).toEqual([
      'policy.authorities.runner.keyless: give exactly one of issuer, issuerRegExp',
    ]);
    expect(problemsOf({ ...BASE, authorities: { runner: {} } })).toEqual([
      'policy.authorities.runner: give exactly one of keyless, publicKey',
    ]);
    expect(
      problemsOf({ ...BASE, authorities: { runner: { keyless: { subjectRegExp: '(', issuer: 'i' } } } })[0],
    ).toMatch(/^policy\.authorities\.runner\.keyless\.subjectRegExp: not a regular expression/);
    expect(problemsOf({ ...BASE, sbom: { authorities: ['runner', 'nobody'] } })).toEqual([
      "policy.sbom.authorities[1]: no authority named 'nobody'",
    ]);
    expect(
      problemsOf({
        ...BASE,
        provenance: { authorities: ['runner'], source: { refs: { semverTags: 'not a range!' } } },
      }),
    ).toEqual(["policy.provenance.source.refs.semverTags: 'not a range!' is not a semver range"]);
    expect(problemsOf({ ...BASE, provenance: undefined, dependencies: { syncAuthorities: ['runner'] } })).toEqual([
      'policy.dependencies: needs a provenance section (dependencies are read from the provenance)',
    ]);
  });

  it('refuses YAML syntax errors and duplicate keys as unreadable', () => {
    const code = (text: string): string | undefined => {
      try {
        parsePolicy(text);
      } catch (err) {
        return (err as PolicyError).code;
      }
      return undefined;
    };
    expect(code('apiVersion: [unclosed')).toBe('POLICY_UNREADABLE');
    expect(code('apiVersion: airlock.dev/policy/v1\napiVersion: airlock.dev/policy/v1\nauthorities: {}\n')).toBe(
      'POLICY_UNREADABLE',
    );
    expect(code('{"apiVersion":"airlock.dev/policy/v1","authorities":{},"authorities":{}}')).toBe('POLICY_UNREADABLE');
  });

  it('an unreadable file is POLICY_UNREADABLE naming the path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'airlock-policy-load-'));
    try {
      expect(() => loadPolicyFile(join(dir, 'missing.yaml'))).toThrow(
        expect.objectContaining({ code: 'POLICY_UNREADABLE', message: expect.stringContaining('missing.yaml') }),
      );
      writeFileSync(join(dir, 'p.yaml'), 'apiVersion: airlock.dev/policy/v1\nauthorities: {}\n');
      expect(() => loadPolicyFile(join(dir, 'p.yaml'))).toThrow(
        /policy\.authorities: must NOT have fewer than 1 properties/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses durations', () => {
    expect(parseDuration('90m')).toBe(5400);
    expect(parseDuration('1w2d')).toBe(9 * 86_400);
    expect(parseDuration('12h30s')).toBe(43_230);
  });
});
