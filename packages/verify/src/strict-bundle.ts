import {
  BUNDLE_V03_MEDIA_TYPE,
  bundleFromJSON,
  bundleToJSON,
  type Bundle,
  type SerializedBundle,
} from '@sigstore/bundle';
import { VerifyError } from './errors.js';

export interface StrictBundleOptions {
  /** Media types accepted (default: only Sigstore bundle v0.3, which airlock signers produce). */
  mediaTypes?: readonly string[];
}

export interface StrictBundle {
  /** The bundle JSON, exactly as in the file (hand it to BundleVerifier.verify or store it). */
  json: SerializedBundle;
  bundle: Bundle;
}

/**
 * Parses Sigstore bundle JSON bytes and accepts them only in canonical form: the bytes must equal
 * `JSON.stringify(bundleToJSON(bundleFromJSON(parsed)))`, the protobuf-specs JSON encoding that
 * @sigstore/bundle (and so AirlockSigner) writes. Signature checks cover the decoded values but not their JSON
 * spelling, so without this a changed byte can still verify: base64 with altered padding bits or a dropped or
 * changed `=`, an unknown or renamed field (ignored by the decoder), whitespace, key order, escapes. The media
 * type is pinned too, as nothing signs it. Throws VERIFY_BUNDLE_MALFORMED (not JSON / not a bundle / other
 * media type) or VERIFY_BUNDLE_NONCANONICAL (naming the first differing byte).
 */
export function parseBundleStrict(bytes: Uint8Array, options: StrictBundleOptions = {}): StrictBundle {
  const input = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let json: unknown;
  try {
    json = JSON.parse(input.toString('utf8'));
  } catch (cause) {
    throw new VerifyError('VERIFY_BUNDLE_MALFORMED', `not JSON: ${(cause as Error).message}`, { cause });
  }
  const bundle = decodeBundle(json);
  const mediaTypes = options.mediaTypes ?? [BUNDLE_V03_MEDIA_TYPE];
  if (!mediaTypes.includes(bundle.mediaType)) {
    throw new VerifyError(
      'VERIFY_BUNDLE_MALFORMED',
      `bundle media type '${bundle.mediaType}' is not accepted (expected ${mediaTypes.map((m) => `'${m}'`).join(' or ')})`,
    );
  }
  checkIntegers(bundle);
  checkCheckpoints(bundle);
  const canonical = canonicalBundleBytes(bundle);
  if (!canonical.equals(input)) {
    let i = 0;
    while (i < input.length && i < canonical.length && input[i] === canonical[i]) i++;
    const from = Math.max(0, i - 16);
    const show = (b: Buffer): string => JSON.stringify(b.subarray(from, i + 24).toString('utf8'));
    throw new VerifyError(
      'VERIFY_BUNDLE_NONCANONICAL',
      `bundle JSON is not in canonical form at byte ${i}: bytes ${from}… read ${show(input)} where the canonical encoding has ${show(canonical)}`,
      { details: { offset: i } },
    );
  }
  return { json: json as SerializedBundle, bundle };
}

/**
 * Decodes bundle JSON (lenient about spelling; parseBundleStrict adds that). @sigstore/bundle reports a missing or
 * malformed field as "invalid bundle" with the field paths aside: put them in the message, so the user reads
 * which field (e.g. `verificationMaterial.tlogEntries[0].inclusionProof`) is wrong.
 */
export function decodeBundle(json: unknown): Bundle {
  try {
    return bundleFromJSON(json);
  } catch (cause) {
    const fields = (cause as { fields?: unknown }).fields;
    const named = Array.isArray(fields) && fields.length > 0 ? fields.map(String) : undefined;
    const why = named ? `missing or invalid ${named.join(', ')}` : (cause as Error).message || 'cannot be decoded';
    throw new VerifyError('VERIFY_BUNDLE_MALFORMED', `not a valid Sigstore bundle: ${why}`, {
      cause,
      ...(named ? { details: { fields: named } } : {}),
    });
  }
}

/**
 * protobuf-specs JSON carries int64 values as decimal strings and the decoder keeps them as written, so "07"
 * would round-trip; where a verifier converts them to numbers it would equal "7". Only the shortest form is canonical.
 */
function checkIntegers(bundle: Bundle): void {
  bundle.verificationMaterial.tlogEntries.forEach((e, i) => {
    const fields: [string, string | undefined][] = [
      ['logIndex', e.logIndex],
      ['integratedTime', e.integratedTime],
      ['inclusionProof.logIndex', e.inclusionProof?.logIndex],
      ['inclusionProof.treeSize', e.inclusionProof?.treeSize],
    ];
    for (const [name, value] of fields) {
      if (value !== undefined && !/^(0|[1-9][0-9]*)$/.test(value)) {
        throw new VerifyError(
          'VERIFY_BUNDLE_NONCANONICAL',
          `tlogEntries[${i}].${name} ${JSON.stringify(value)} is not a canonical decimal integer`,
        );
      }
    }
  });
}

/**
 * A checkpoint's signature lines are not covered by any signature, and @sigstore/verify reads them leniently
 * (base64 decoded with padding bits ignored, the key name matched as a regular expression against the log's
 * URL, lines it cannot parse skipped). Pin them as the log writes them: after the signed note and a blank line,
 * exactly one line `— <name> <base64(key hint ‖ signature)>\n` whose name is the origin's host part (Rekor and
 * airlock logs name the key so) and whose base64 is canonical.
 */
function checkCheckpoints(bundle: Bundle): void {
  bundle.verificationMaterial.tlogEntries.forEach((e, i) => {
    const envelope = e.inclusionProof?.checkpoint?.envelope;
    if (envelope === undefined) return;
    const fail = (why: string): never => {
      throw new VerifyError('VERIFY_BUNDLE_NONCANONICAL', `tlogEntries[${i}].inclusionProof.checkpoint: ${why}`);
    };
    const split = envelope.indexOf('\n\n');
    if (split < 0) fail('no blank line between the note and its signature');
    const origin = envelope.slice(0, envelope.indexOf('\n'));
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/]+={0,2})\n$/.exec(envelope.slice(split + 2));
    if (!m) fail("the signature block is not exactly one line '\u2014 <name> <base64>'");
    const [, name, b64] = m!;
    if (name !== origin && name !== origin.split(' - ')[0])
      fail(`the signature's key name '${name}' does not name the log's origin '${origin}'`);
    if (Buffer.from(b64!, 'base64').toString('base64') !== b64) fail('the signature is not canonical base64');
  });
}

/** The canonical bytes of a bundle (parsed, or bundle JSON): what parseBundleStrict accepts. */
export function canonicalBundleBytes(bundle: Bundle | SerializedBundle): Buffer {
  const parsed = 'content' in bundle ? (bundle as Bundle) : bundleFromJSON(bundle);
  return Buffer.from(JSON.stringify(bundleToJSON(parsed)), 'utf8');
}
