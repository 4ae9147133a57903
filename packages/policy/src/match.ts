import type { VerificationResult } from '@airlock/verify';
import type { Authority } from './types.js';

/** A regular expression from the policy, always anchored at both ends (never a substring match). */
export function anchored(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Glob over `/`-separated strings: `*` within a segment, `**` across segments, `?` one character; anchored. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += escapeRegExp(c);
  }
  return new RegExp(`^${re}$`);
}

/** True when `value` equals one of `patterns` or matches one as a glob. */
export function matchesAny(value: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => p === value || globToRegExp(p).test(value));
}

/** Who signed an attestation, as @airlock/verify's BundleVerifier reports it. */
export type Signer = VerificationResult['signer'];

export interface CompiledAuthority {
  name: string;
  kind: 'keyless' | 'publicKey';
  /** What it accepts, for `expected` in rule results. */
  describe: Record<string, string>;
  matches(signer: Signer): boolean;
}

/** Compiles a validated authority (exactly one of keyless/publicKey; load.ts has checked the shape). */
export function compileAuthority(name: string, a: Authority): CompiledAuthority {
  if (a.keyless) {
    const k = a.keyless;
    const subject = k.subject !== undefined ? anchored(escapeRegExp(k.subject)) : anchored(k.subjectRegExp!);
    const issuer = k.issuer !== undefined ? anchored(escapeRegExp(k.issuer)) : anchored(k.issuerRegExp!);
    const describe: Record<string, string> = {};
    for (const key of ['subject', 'subjectRegExp', 'issuer', 'issuerRegExp'] as const)
      if (k[key] !== undefined) describe[key] = k[key]!;
    return {
      name,
      kind: 'keyless',
      describe,
      matches: (s) =>
        s.subjectAlternativeName !== undefined &&
        s.issuer !== undefined &&
        subject.test(s.subjectAlternativeName) &&
        issuer.test(s.issuer),
    };
  }
  const hint = a.publicKey!.hint;
  return {
    name,
    kind: 'publicKey',
    describe: { publicKey: hint },
    // A key-signed bundle carries no certificate; the verifier was given this key under this hint.
    matches: (s) => s.subjectAlternativeName === undefined && s.keyHint === hint,
  };
}

/** A signer as a short string for `seen`. */
export function describeSigner(s: Signer): string {
  if (s.subjectAlternativeName !== undefined) return `${s.subjectAlternativeName} (issuer ${s.issuer ?? 'none'})`;
  if (s.keyHint !== undefined) return `public key '${s.keyHint}'`;
  return '(unknown signer)';
}
