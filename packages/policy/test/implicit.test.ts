/** The implicit policy built from slsa-verifier / gh-style shortcut flags, validated like a policy file. */
import { describe, expect, it } from 'vitest';
import { implicitPolicy, versionedTagRange } from '../src/index.js';

const ID = { certificateIdentity: 'spiffe://airlock.internal/runner/ci', certificateOidcIssuer: 'https://issuer' };

describe('implicitPolicy', () => {
  it('maps each flag to its rule', () => {
    const p = implicitPolicy({
      ...ID,
      sourceUri: 'https://git.corp.example/acme/app.git',
      sourceTag: 'v1.4.2',
      builderId: 'spiffe://airlock.internal/runner/ci',
      maxAge: '7d',
      trustedRoot: '/etc/airlock/trusted_root.json',
    });
    expect(p.uri).toBe('airlock:implicit-policy');
    expect(p.document).toEqual({
      apiVersion: 'airlock.dev/policy/v1',
      name: 'implicit policy from command-line flags',
      trustedRoots: ['/etc/airlock/trusted_root.json'],
      authorities: { signer: { keyless: { subject: ID.certificateIdentity, issuer: 'https://issuer' } } },
      provenance: {
        authorities: ['signer'],
        builderIds: ['spiffe://airlock.internal/runner/ci'],
        source: { uris: ['https://git.corp.example/acme/app.git'], refs: { tags: ['v1.4.2'] } },
        maxAge: '7d',
      },
    });
    expect(p.maxAgeSeconds).toBe(7 * 86_400);
  });

  it('refs: --source-ref splits into branch or tag; --source-versioned-tag becomes a semver range', () => {
    expect(implicitPolicy({ ...ID, sourceRef: 'refs/heads/main' }).document.provenance!.source!.refs).toEqual({
      branches: ['main'],
    });
    expect(implicitPolicy({ ...ID, sourceRef: 'refs/tags/v2.0.0' }).document.provenance!.source!.refs).toEqual({
      tags: ['v2.0.0'],
    });
    expect(versionedTagRange('v1')).toBe('^1.0.0');
    expect(versionedTagRange('v1.2')).toBe('~1.2.0');
    expect(versionedTagRange('1.2.3')).toBe('1.2.3');
    expect(() => versionedTagRange('v1.x')).toThrow(expect.objectContaining({ code: 'POLICY_INVALID' }));
    expect(() => implicitPolicy({ ...ID, sourceRef: 'main' })).toThrow(/must be refs\/heads\/<branch> or refs\/tags/);
    expect(() => implicitPolicy({ ...ID, sourceTag: 'v1', sourceBranch: 'main' })).toThrow(/at most one of/);
  });

  it('another predicate type alone requires that attestation and no provenance', () => {
    const p = implicitPolicy({ ...ID, predicateType: 'https://cyclonedx.org/bom' });
    expect(p.document.provenance).toBeUndefined();
    expect(p.document.attestations).toEqual([{ predicateType: 'https://cyclonedx.org/bom', authorities: ['signer'] }]);
  });

  it('errors name the flags', () => {
    expect(() => implicitPolicy({ certificateIdentity: 'x' })).toThrow(
      'give exactly one of --certificate-oidc-issuer, --certificate-oidc-issuer-regexp',
    );
    expect(() => implicitPolicy({ ...ID, certificateIdentityRegexp: 'x.*' })).toThrow(
      'give exactly one of --certificate-identity, --certificate-identity-regexp',
    );
    expect(() => implicitPolicy({ ...ID, maxAge: '3 days' })).toThrow('--max-age: must match pattern');
    expect(() => implicitPolicy({ ...ID, certificateOidcIssuer: undefined, certificateOidcIssuerRegexp: '(' })).toThrow(
      /--certificate-oidc-issuer-regexp: not a regular expression/,
    );
  });
});
