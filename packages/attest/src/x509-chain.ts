/** Certificate-chain checks with node:crypto's X509Certificate (EK, VCEK and PCK chains share this). */
import { X509Certificate } from 'node:crypto';
import { AttestError, type AttestErrorCode } from './errors.js';

export function parseCertificate(input: string | Buffer, what: string, code: AttestErrorCode): X509Certificate {
  try {
    return new X509Certificate(input);
  } catch (err) {
    throw new AttestError(code, `${what}: not an X.509 certificate (${(err as Error).message})`);
  }
}

/** PEM blocks in a string, each parsed. */
export function parsePemBundle(pem: string, what: string, code: AttestErrorCode): X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b, i) => parseCertificate(b, `${what} #${i + 1}`, code));
}

/** A DN on one line (node prints one RDN per line). */
export function dn(name: string): string {
  return name.replace(/\n/g, ', ');
}

function validAt(cert: X509Certificate, now: Date): boolean {
  return new Date(cert.validFrom) <= now && now <= new Date(cert.validTo);
}

function signedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

/**
 * Walks leaf → intermediates → a trusted root, checking each signature, validity at `now` and that every issuer is
 * a CA. Intermediates are untrusted hints (they may come from the attester); only `roots` anchor trust.
 * Returns the chain, leaf first.
 */
export function verifyChain(
  leaf: X509Certificate,
  intermediates: X509Certificate[],
  roots: X509Certificate[],
  opts: { now: Date; what: string; code: AttestErrorCode; maxDepth?: number },
): X509Certificate[] {
  const fail = (why: string): never => {
    throw new AttestError(opts.code, `${opts.what}: ${why}`);
  };
  const chain = [leaf];
  let current = leaf;
  for (let depth = 0; depth <= (opts.maxDepth ?? 4); depth++) {
    if (!validAt(current, opts.now))
      fail(
        `certificate "${dn(current.subject)}" is not valid at ${opts.now.toISOString()} (${current.validFrom} – ${current.validTo})`,
      );
    const root = roots.find((r) => signedBy(current, r));
    if (root) {
      if (!root.ca) fail(`trusted root "${dn(root.subject)}" is not a CA certificate`);
      if (!validAt(root, opts.now))
        fail(`trusted root "${dn(root.subject)}" is not valid at ${opts.now.toISOString()}`);
      return [...chain, root];
    }
    if (roots.some((r) => r.fingerprint256 === current.fingerprint256)) return chain;
    const next = intermediates.find((c) => c.ca && c.fingerprint256 !== current.fingerprint256 && signedBy(current, c));
    if (!next)
      fail(
        `certificate "${dn(current.subject)}" (issuer "${dn(current.issuer)}") does not chain to a configured trusted root`,
      );
    chain.push(next!);
    current = next!;
  }
  return fail('certificate chain is too long');
}
