/**
 * Names shared by everything that carries attested node claims (issue 10 §4): the agent puts them in a token
 * claim, the CA copies them into certificate extensions, verifiers and the policy engine read them back. The
 * claims object itself is defined by @airlock/attest (`NodeAttestationClaims`).
 *
 * The arc: the registration-free UUID OID 2.25.119138931203177365605296461339232097847 (UUID
 * 59a152d1-db25-4696-a0aa-67087904d637) was the first choice, but the JS X.509 stack cannot carry its 128-bit arc:
 * asn1js (under @peculiar/x509, which the CA signs with) decodes it to "{hex}" and re-encodes the OID as just
 * `2.25`, and @sigstore/core's parseOID uses 32-bit shifts. Until the project registers an IANA Private Enterprise
 * Number (then: 1.3.6.1.4.1.<PEN>), the arc is under X.660's 2.999 "example" arc with small components, which
 * every parser round-trips. Each leaf holds a DER UTF8String (as Fulcio's extensions .1.8+ do).
 */
export const AIRLOCK_OID_ARC = '2.999.1136.59';
/** The UUID OID this arc stands in for (see above). */
export const AIRLOCK_UUID_OID = '2.25.119138931203177365605296461339232097847';
export const NODE_ATTESTATION_OID = {
  /** The whole claims object, RFC 8785 canonical JSON. */
  claims: `${AIRLOCK_OID_ARC}.1.1`,
  referenceValueSetId: `${AIRLOCK_OID_ARC}.1.2`,
  ekPublicKeyDigest: `${AIRLOCK_OID_ARC}.1.3`,
  akName: `${AIRLOCK_OID_ARC}.1.4`,
  quoteDigest: `${AIRLOCK_OID_ARC}.1.5`,
} as const;

/** The workload-token claim holding the attested node claims as canonical JSON (a string, like Fulcio's claims). */
export const NODE_ATTESTATION_TOKEN_CLAIM = 'airlock_node_attestation';

/** Upper bound for that claim: PCR values of one bank plus digests fit well below it. */
export const MAX_NODE_ATTESTATION_CLAIM_LENGTH = 16_384;

/**
 * The DER content octets of an OID (X.690 §8.19), with arbitrary-size arcs. Needed to find these extensions: the
 * 2.25 arc's 128-bit component is valid DER, but common parsers (sigstore-js's parseOID, asn1js) read arcs with
 * 32-bit or float arithmetic and print it wrongly, so extensions under the arc are matched by encoded bytes.
 */
export function encodeOidContent(oid: string): Buffer {
  const arcs = oid.split('.').map((a) => BigInt(a));
  if (arcs.length < 2) throw new RangeError(`OID ${oid} needs at least two arcs`);
  const out: number[] = [];
  const [first, second, ...rest] = arcs as [bigint, bigint, ...bigint[]];
  for (const arc of [first * 40n + second, ...rest]) {
    const groups: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...groups);
  }
  return Buffer.from(out);
}
