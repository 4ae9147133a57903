import { describe, expect, it } from 'vitest';
import { SigningConfig, ServiceSelector } from '@sigstore/protobuf-specs';
import { buildSigningConfig, SIGNING_CONFIG_MEDIA_TYPE } from '../src/signing-config.js';
import { buildTrustedRoot } from '../src/trusted-root.js';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { generateKeyPairSync } from 'node:crypto';

const at = (s: string): Date => new Date(s);

describe('buildSigningConfig (Sigstore signing config v0.2)', () => {
  const input = {
    ca: { url: 'http://127.0.0.1:8101', validFrom: at('2026-01-01T00:00:00Z') },
    tsa: { url: 'http://127.0.0.1:8103', validFrom: at('2026-01-01T00:00:00Z') },
    oidc: { url: 'http://127.0.0.1:8102', validFrom: at('2026-01-01T00:00:00Z') },
    tlogs: [{ url: 'http://127.0.0.1:8100', majorApiVersion: 1, validFrom: at('2026-01-01T00:00:00Z') }],
  };

  it('parses as a protobuf-specs SigningConfig naming CA, OIDC issuer, log v1 and the full TSA endpoint', () => {
    const cfg = SigningConfig.fromJSON(buildSigningConfig(input));
    expect(cfg.mediaType).toBe(SIGNING_CONFIG_MEDIA_TYPE);
    expect(cfg.caUrls.map((s) => s.url)).toEqual(['http://127.0.0.1:8101']);
    expect(cfg.oidcUrls.map((s) => s.url)).toEqual(['http://127.0.0.1:8102']);
    expect(cfg.rekorTlogUrls.map((s) => [s.url, s.majorApiVersion])).toEqual([['http://127.0.0.1:8100', 1]]);
    expect(cfg.tsaUrls.map((s) => s.url)).toEqual(['http://127.0.0.1:8103/api/v1/timestamp']);
    expect(cfg.rekorTlogConfig?.selector).toBe(ServiceSelector.ANY);
    expect(cfg.tsaConfig?.selector).toBe(ServiceSelector.ANY);
    expect(cfg.caUrls[0]!.validFor?.start?.toISOString()).toBe('2026-01-01T00:00:00.000Z');
  });

  it('adds a log service with one more entry (a Rekor v2 API), newest validity first', () => {
    const json = buildSigningConfig({
      ...input,
      tlogs: [
        ...input.tlogs,
        { url: 'http://127.0.0.1:8104', majorApiVersion: 2, validFrom: at('2026-02-01T00:00:00Z') },
      ],
    });
    expect(json.rekorTlogUrls.map((s) => [s.url, s.majorApiVersion])).toEqual([
      ['http://127.0.0.1:8104', 2],
      ['http://127.0.0.1:8100', 1],
    ]);
  });
});

describe('buildTrustedRoot with a TSA', () => {
  it('lists the TSA in timestampAuthorities with validFor.start and the chain leaf first', () => {
    const der = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const json = buildTrustedRoot({
      tlog: { baseUrl: 'http://127.0.0.1:9', publicKeyDer: der, validFrom: at('2026-01-01T00:00:00Z') },
      ca: {
        uri: 'http://127.0.0.1:8',
        chainDer: [Buffer.from('i'), Buffer.from('r')],
        validFrom: at('2026-01-01T00:00:00Z'),
      },
      tsa: {
        uri: 'http://127.0.0.1:7',
        chainDer: [Buffer.from('leaf'), Buffer.from('root')],
        validFrom: at('2026-01-03T00:00:00Z'),
      },
    });
    const parsed = TrustedRoot.fromJSON(json);
    expect(parsed.timestampAuthorities).toHaveLength(1);
    expect(parsed.timestampAuthorities[0]!.uri).toBe('http://127.0.0.1:7');
    expect(
      parsed.timestampAuthorities[0]!.certChain!.certificates.map((c) => Buffer.from(c.rawBytes).toString()),
    ).toEqual(['leaf', 'root']);
    expect(json.timestampAuthorities[0]!.validFor.start).toBe('2026-01-03T00:00:00.000Z');
  });
});
