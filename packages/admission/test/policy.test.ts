/**
 * The admission policy document: the repository's example loads; schema problems are named by field and unknown
 * keys are refused; a broken release policy is named by its place; matching is by normalised host/repository glob,
 * excludes and namespaces, and every matching policy is returned (all must pass).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAdmissionPolicyFile, parseAdmissionPolicy } from '../src/policy/load.js';
import { matchName, matchingPolicies } from '../src/policy/match.js';

const FIXTURE = new URL('../../../fixtures/admission/admission-policy.yaml', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'airlock-adm-policy-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const RELEASE = `{ inline: { apiVersion: airlock.dev/policy/v1, authorities: { k: { keyless: { subject: s, issuer: i } } }, attestations: [ { predicateType: 'https://slsa.dev/provenance/v1', authorities: [k] } ] } }`;

function parse(yaml: string) {
  return parseAdmissionPolicy(yaml, 'test', dir);
}

function problems(yaml: string): string[] {
  try {
    parse(yaml);
  } catch (err) {
    return ((err as { details?: { problems?: string[] } }).details?.problems ?? [(err as Error).message]) as string[];
  }
  throw new Error('expected the policy to be refused');
}

describe('admission policy', () => {
  it('loads the example in fixtures/admission (file and inline release policies, VSA fast path, toolchains)', () => {
    const p = loadAdmissionPolicyFile(FIXTURE);
    expect(p.unmatched).toBe('deny');
    expect(p.policies.map((x) => [x.name, x.mode, x.vsa?.maxAgeSeconds])).toEqual([
      ['corp-apps', 'enforce', 86400],
      ['vendor-images', 'warn', undefined],
    ]);
    expect(p.toolchains?.document.provenance?.builderIds).toEqual(['spiffe://corp.example/runner/ci']);
    expect(p.files.map((f) => f.split('/').pop())).toEqual([
      'admission-policy.yaml',
      'release.policy.yaml',
      'release.policy.yaml',
    ]);
    expect(p.digest).toMatch(/^[0-9a-f]{64}$/);
  });

  it('names each schema problem by field; unknown keys are refused', () => {
    expect(
      problems(
        `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: a, images: ['x/**'], release: ${RELEASE}, mode: audit, imagez: [] }\nextra: 1\n`,
      ),
    ).toEqual([
      'admission.extra: unknown field',
      'admission.policies[0].imagez: unknown field',
      'admission.policies[0].mode: must be equal to one of the allowed values: "enforce", "warn"',
    ]);
    expect(problems(`apiVersion: airlock.dev/admission-policy/v2\npolicies: []\n`)).toEqual([
      'admission.apiVersion: must be equal to constant "airlock.dev/admission-policy/v1"',
      'admission.policies: must NOT have fewer than 1 items',
    ]);
    expect(
      problems(
        `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: a, images: ['x/**'], release: { file: a, inline: {} } }\n`,
      ),
    ).toEqual(['admission.policies[0].release: must NOT have more than 1 properties']);
  });

  it('refuses duplicate policy names, a zero maxAge, duplicate YAML keys and an invalid release policy', () => {
    expect(
      problems(
        `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: a, images: ['x/**'], release: ${RELEASE} }\n  - { name: a, images: ['y/**'], release: ${RELEASE}, vsa: { verifierIdentity: v, issuer: i, maxAge: 0h } }\n`,
      ),
    ).toEqual([
      "admission.policies[1].name: 'a' is also the name of policies[0]",
      'admission.policies[1].vsa.maxAge: must be longer than 0s',
    ]);
    expect(problems(`apiVersion: airlock.dev/admission-policy/v1\napiVersion: x\npolicies: []\n`)[0]).toMatch(
      /not valid YAML or JSON/,
    );
    const bad = problems(
      `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: a, images: ['x/**'], release: { inline: { apiVersion: airlock.dev/policy/v1, authorities: {}, bogus: 1 } } }\n`,
    );
    expect(bad).toHaveLength(1);
    expect(bad[0]).toMatch(/^admission\.policies\[0\]\.release: .*policy\.bogus: unknown field/s);
    expect(
      problems(
        `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: a, images: ['x/**'], release: { file: missing.yaml } }\n`,
      )[0],
    ).toMatch(/^admission\.policies\[0\]\.release: cannot read policy/);
  });

  it('matches host/repository globs (Docker Hub names normalised), excludes and namespaces; returns every match', () => {
    const p = parse(`apiVersion: airlock.dev/admission-policy/v1
unmatched: allow
policies:
  - { name: all-corp, images: ['reg.corp/**'], exclude: ['reg.corp/lab/**'], release: ${RELEASE} }
  - { name: apps, images: ['reg.corp/apps/*'], namespaces: ['team-*'], release: ${RELEASE} }
  - { name: hub, images: ['docker.io/library/*'], release: ${RELEASE} }
`);
    const names = (image: string, ns?: string) => matchingPolicies(p, matchName(image), ns).map((x) => x.name);
    expect(p.unmatched).toBe('allow');
    expect(names('reg.corp/apps/web:1', 'team-a')).toEqual(['all-corp', 'apps']);
    expect(names('reg.corp/apps/web:1', 'default')).toEqual(['all-corp']);
    expect(names('reg.corp/apps/web:1')).toEqual(['all-corp']);
    expect(names('reg.corp/apps/web/deep:1', 'team-a')).toEqual(['all-corp']);
    expect(names('reg.corp/lab/x:1')).toEqual([]);
    expect(names('nginx:1.27')).toEqual(['hub']);
    expect(names('docker.io/library/nginx@sha256:' + 'b'.repeat(64))).toEqual(['hub']);
    expect(names('evil.example/reg.corp/apps/web:1')).toEqual([]);
    expect(() => matchName('Reg.corp/UPPER:1')).toThrow();
  });

  it('the digest changes when a release policy file changes', () => {
    writeFileSync(
      join(dir, 'r.yaml'),
      'apiVersion: airlock.dev/policy/v1\nauthorities: { k: { keyless: { subject: s, issuer: i } } }\n',
    );
    const doc = `apiVersion: airlock.dev/admission-policy/v1\npolicies:\n  - { name: a, images: ['x/**'], release: { file: r.yaml } }\n`;
    writeFileSync(join(dir, 'a.yaml'), doc);
    const before = loadAdmissionPolicyFile(join(dir, 'a.yaml'));
    writeFileSync(
      join(dir, 'r.yaml'),
      'apiVersion: airlock.dev/policy/v1\nauthorities: { k: { keyless: { subject: s2, issuer: i } } }\n',
    );
    const after = loadAdmissionPolicyFile(join(dir, 'a.yaml'));
    expect(after.digest).not.toBe(before.digest);
    expect(after.policies[0]!.digest).not.toBe(before.policies[0]!.digest);
  });
});
