/**
 * parseBundleStrict: a Sigstore bundle file is accepted only as the exact bytes of its protobuf-specs JSON
 * encoding (what @sigstore/bundle's bundleToJSON and so every airlock signer writes). Signatures cover decoded
 * values, not their spelling; every byte change must either be refused here or change a decoded value.
 */
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import {
  BUNDLE_V02_MEDIA_TYPE,
  BUNDLE_V03_MEDIA_TYPE,
  bundleFromJSON,
  bundleToJSON,
  toDSSEBundle,
  type Bundle,
} from '@sigstore/bundle';
import { describe, expect, it } from 'vitest';
import { canonicalBundleBytes, parseBundleStrict, type VerifyErrorCode } from '../src/index.js';

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** key hint ‖ ECDSA signature, 71 bytes: base64 with one '=' */
const CHECKPOINT_SIG = randomBytes(71).toString('base64');

/** A v0.3 DSSE bundle shaped like the trust plane's: certificate, one tlog entry with promise and proof. */
function makeBundle(): Bundle {
  const bundle = toDSSEBundle({
    artifact: Buffer.from('{"_type":"https://in-toto.io/Statement/v1"}'),
    artifactType: 'application/vnd.in-toto+json',
    signature: randomBytes(71), // base64 ends in one '='
    certificate: randomBytes(301),
    certificateChain: false,
  });
  const root = randomBytes(32);
  bundle.verificationMaterial.tlogEntries.push({
    logIndex: '7',
    logId: { keyId: randomBytes(32) },
    kindVersion: { kind: 'dsse', version: '0.0.1' },
    integratedTime: '1795923536',
    inclusionPromise: { signedEntryTimestamp: randomBytes(70) }, // '=='
    inclusionProof: {
      logIndex: '7',
      rootHash: root,
      treeSize: '8',
      hashes: [randomBytes(32), randomBytes(32)],
      checkpoint: {
        envelope: `127.0.0.1 - 941938410908775306\n8\n${root.toString('base64')}\n\n\u2014 127.0.0.1 ${CHECKPOINT_SIG}\n`,
      },
    },
    canonicalizedBody: Buffer.from(JSON.stringify({ apiVersion: '0.0.1', kind: 'dsse', spec: {} })),
  });
  return bundle;
}

const BUNDLE = makeBundle();
const TEXT = JSON.stringify(bundleToJSON(BUNDLE));
const BYTES = Buffer.from(TEXT);

function codeOf(input: Buffer | string): VerifyErrorCode | 'ACCEPTED' {
  try {
    parseBundleStrict(typeof input === 'string' ? Buffer.from(input) : input);
    return 'ACCEPTED';
  } catch (err) {
    return (err as { code: VerifyErrorCode }).code;
  }
}

/** Replaces the `n`th occurrence (0-based) of `what` in the canonical text. */
function edit(what: string, by: string, n = 0): string {
  let at = -1;
  for (let i = 0; i <= n; i++) at = TEXT.indexOf(what, at + 1);
  if (at < 0) throw new Error(`no ${what} in the bundle`);
  return TEXT.slice(0, at) + by + TEXT.slice(at + what.length);
}

/** The base64 value of `key`, with the character before its padding changed in bits the decoder ignores. */
function paddingBitsChanged(key: string): string {
  const start = TEXT.indexOf(`"${key}":"`) + key.length + 4;
  const end = TEXT.indexOf('"', start);
  const value = TEXT.slice(start, end);
  const pad = value.length - value.replace(/=+$/, '').length;
  expect(pad).toBeGreaterThan(0);
  const i = value.length - pad - 1;
  const changed = value.slice(0, i) + B64[B64.indexOf(value[i]!) ^ 1] + value.slice(i + 1);
  expect(Buffer.from(changed, 'base64')).toEqual(Buffer.from(value, 'base64')); // a lenient decoder sees no change
  return TEXT.slice(0, start) + changed + TEXT.slice(end);
}

describe('parseBundleStrict', () => {
  it('accepts the canonical encoding and returns the JSON and the decoded bundle', () => {
    const r = parseBundleStrict(BYTES);
    expect(r.json).toEqual(JSON.parse(TEXT));
    expect(r.bundle.mediaType).toBe(BUNDLE_V03_MEDIA_TYPE);
    expect(canonicalBundleBytes(r.bundle)).toEqual(BYTES);
    expect(canonicalBundleBytes(r.json)).toEqual(BYTES);
    // a view into a larger buffer works too
    const padded = Buffer.concat([Buffer.from('xx'), BYTES, Buffer.from('yy')]);
    expect(parseBundleStrict(padded.subarray(2, 2 + BYTES.length)).bundle.mediaType).toBe(BUNDLE_V03_MEDIA_TYPE);
  });

  it.each([
    ['pretty-printed', () => JSON.stringify(JSON.parse(TEXT), null, 2)],
    ['a trailing newline', () => `${TEXT}\n`],
    ['leading whitespace', () => ` ${TEXT}`],
    [
      'reordered keys',
      () => JSON.stringify({ verificationMaterial: JSON.parse(TEXT).verificationMaterial, ...JSON.parse(TEXT) }),
    ],
    ['an unknown top-level field', () => `${TEXT.slice(0, -1)},"extra":1}`],
    ['an unknown nested field', () => edit('"kindVersion":{', '"kindVersion":{"x":"y",')],
    ['the key of an empty object renamed', () => edit('"timestampVerificationData"', '"timestampVerificationDatb"')],
    ['a duplicate key', () => `{"mediaType":"x",${TEXT.slice(1)}`],
    ['an escaped character', () => edit('sigstore', 'sigst\\u006fre')],
    ['an escaped slash in base64', () => edit('/', '\\/')],
    ['changed padding bits in a base64 value (one =)', () => paddingBitsChanged('sig')],
    ['changed padding bits in a base64 value (two =)', () => paddingBitsChanged('signedEntryTimestamp')],
    ['a base64 value without its padding', () => edit('=="', '"')],
    ['a changed padding character', () => edit('=="', '=<"')],
    [
      'url-safe base64',
      () => paddingBitsChanged('sig').replace(/"sig":"[^"]*"/, (m) => m.replace(/\+/g, '-').replace(/\//g, '_')),
    ],
    [
      'a number instead of a string for int64',
      () => edit('"integratedTime":"1795923536"', '"integratedTime":1795923536'),
    ],
    ['a leading zero in an int64 string', () => edit('"treeSize":"8"', '"treeSize":"08"')],
    ['a sign in an int64 string', () => edit('"logIndex":"7"', '"logIndex":"+7"')],
    ['whitespace in an int64 string', () => edit('"integratedTime":"1795923536"', '"integratedTime":" 1795923536"')],
    [
      'an invalid UTF-8 byte',
      () => {
        const at = TEXT.indexOf('127.0.0.1 -') + 1;
        return Buffer.concat([BYTES.subarray(0, at), Buffer.from([0xff]), BYTES.subarray(at + 1)]);
      },
    ],
  ] as [string, () => string | Buffer][])('refuses %s as non-canonical', (_what, make) => {
    expect(codeOf(make())).toBe('VERIFY_BUNDLE_NONCANONICAL');
  });

  it('names the first differing byte', () => {
    const at = TEXT.indexOf('"kindVersion":{') + 15;
    expect(() => parseBundleStrict(Buffer.from(edit('"kindVersion":{', '"kindVersion":{"x":"y",')))).toThrow(
      `bundle JSON is not in canonical form at byte ${at + 1}: bytes ${at - 15}… read "\\"kindVersion\\":{\\"x\\":\\"y\\",\\"kind\\":\\"dsse\\",\\"ve" where the canonical encoding has "\\"kindVersion\\":{\\"kind\\":\\"dsse\\",\\"version\\":\\""`,
    );
  });

  describe('the checkpoint signature line (signed by nothing, read leniently by @sigstore/verify)', () => {
    const line = `\u2014 127.0.0.1 ${CHECKPOINT_SIG}\\n`;
    const i = CHECKPOINT_SIG.indexOf('=') - 1;
    const other = B64[B64.indexOf(CHECKPOINT_SIG[i]!) ^ 1]!;
    it.each([
      ['padding bits changed', `\u2014 127.0.0.1 ${CHECKPOINT_SIG.slice(0, i)}${other}=\\n`],
      ['padding dropped', `\u2014 127.0.0.1 ${CHECKPOINT_SIG.slice(0, -1)}\\n`],
      ['another key name', `\u2014 127.0.0.2 ${CHECKPOINT_SIG}\\n`],
      ['a key name that matches as a regular expression', `\u2014 127.0.0.. ${CHECKPOINT_SIG}\\n`],
      ['a second signature line', `${line}${line}`],
      ['no final newline', line.slice(0, -2)],
      ['text after the line', `${line}x`],
      ['two spaces', `\u2014  127.0.0.1 ${CHECKPOINT_SIG}\\n`],
    ])('refuses %s', (_what, replacement) => {
      expect(TEXT).toContain(line);
      const t = TEXT.replace(line, replacement);
      expect(() => parseBundleStrict(Buffer.from(t))).toThrow(
        expect.objectContaining({ code: 'VERIFY_BUNDLE_NONCANONICAL', message: expect.stringContaining('checkpoint') }),
      );
    });
  });

  it('refuses what is not a v0.3 bundle as malformed', () => {
    expect(codeOf('not json')).toBe('VERIFY_BUNDLE_MALFORMED');
    expect(codeOf('{}')).toBe('VERIFY_BUNDLE_MALFORMED');
    expect(codeOf(`\ufeff${TEXT}`)).toBe('VERIFY_BUNDLE_MALFORMED');
    // Nothing signs the media type: a relabelled bundle would otherwise pass.
    const v02 = TEXT.replace(BUNDLE_V03_MEDIA_TYPE, BUNDLE_V02_MEDIA_TYPE);
    expect(codeOf(v02)).toBe('VERIFY_BUNDLE_MALFORMED');
    expect(codeOf(TEXT.replace('v0.3', 'v1.3'))).toBe('VERIFY_BUNDLE_MALFORMED');
    expect(parseBundleStrict(Buffer.from(v02), { mediaTypes: [BUNDLE_V02_MEDIA_TYPE] }).bundle.mediaType).toBe(
      BUNDLE_V02_MEDIA_TYPE,
    );
  });

  it('refuses every single-byte change that a lenient parse would decode to the very same bundle', () => {
    // Such changes are invisible to signature checks, which see only decoded values.
    const original = bundleFromJSON(JSON.parse(TEXT));
    const invisible: number[] = [];
    const acceptedInvisible: string[] = [];
    for (let pos = 0; pos < BYTES.length; pos++) {
      for (const mask of [0x01, 0x02, 0x10, 0x20, 0x80]) {
        const t = Buffer.from(BYTES);
        t[pos] = t[pos]! ^ mask;
        let lenient: Bundle;
        try {
          lenient = bundleFromJSON(JSON.parse(t.toString('utf8')));
        } catch {
          continue;
        }
        if (!isDeepStrictEqual(lenient, original)) continue;
        invisible.push(pos);
        if (codeOf(t) !== 'VERIFY_BUNDLE_NONCANONICAL') acceptedInvisible.push(`${pos}^${mask}: ${codeOf(t)}`);
      }
    }
    // The gap is real (base64 padding bits and '=', unknown or renamed keys, whitespace…) and fully closed.
    expect(invisible.length).toBeGreaterThan(20);
    expect(acceptedInvisible).toEqual([]);
  });
});
