import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TrustedRoot } from '@sigstore/protobuf-specs';
import { buildTrustedRoot } from '../src/trusted-root.js';

describe('buildTrustedRoot', () => {
  it('produces a TrustedRoot that protobuf-specs parses, with log ID = sha256(SPKI) and chain order kept', () => {
    const der = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' });
    const chain = [Buffer.from('intermediate'), Buffer.from('root')];
    const json = buildTrustedRoot({
      tlog: { baseUrl: 'http://127.0.0.1:9', publicKeyDer: der, validFrom: new Date('2026-01-01T00:00:00Z') },
      ca: { uri: 'http://127.0.0.1:8', chainDer: chain, validFrom: new Date('2026-01-02T00:00:00Z') },
    });
    const parsed = TrustedRoot.fromJSON(json);
    expect(Buffer.from(parsed.tlogs[0]!.logId!.keyId).toString('hex')).toBe(
      createHash('sha256').update(der).digest('hex'),
    );
    expect(
      parsed.certificateAuthorities[0]!.certChain!.certificates.map((c) => Buffer.from(c.rawBytes).toString()),
    ).toEqual(['intermediate', 'root']);
    expect(json.tlogs[0]!.publicKey.validFor.start).toBe('2026-01-01T00:00:00.000Z');
    expect(json.certificateAuthorities[0]!.validFor.start).toBe('2026-01-02T00:00:00.000Z');
  });
});
