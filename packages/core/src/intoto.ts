import { CoreError } from './errors.js';
import { DIGEST_ALGORITHMS, digestsEqual, type DigestSet } from './digest.js';

/**
 * in-toto Attestation Framework, Statement v1.
 * https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
 */
export const INTOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1';

/** ResourceDescriptor (subjects, materials, resolvedDependencies). At least one of uri/digest/content. */
export interface ResourceDescriptor {
  name?: string;
  uri?: string;
  digest?: Record<string, string>;
  content?: string;
  downloadLocation?: string;
  mediaType?: string;
  annotations?: Record<string, unknown>;
}

export interface Subject {
  name: string;
  digest: Record<string, string>;
}

export interface Statement<P = unknown> {
  _type: typeof INTOTO_STATEMENT_V1;
  subject: Subject[];
  predicateType: string;
  predicate?: P;
}

export function makeStatement<P>(subject: Subject[], predicateType: string, predicate: P): Statement<P> {
  const s: Statement<P> = { _type: INTOTO_STATEMENT_V1, subject, predicateType, predicate };
  validateStatement(s);
  return s;
}

const HEX = /^[0-9a-f]+$/;

/**
 * Validates a Statement from untrusted JSON: every problem is collected, then one error names them all.
 * Digest values for the well-known hash algorithms must be lowercase hex of the right length.
 */
export function validateStatement(value: unknown): asserts value is Statement {
  const problems: string[] = [];
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CoreError('INTOTO_STATEMENT_INVALID', 'in-toto statement: not a JSON object');
  }
  const v = value as Record<string, unknown>;
  if (v._type !== INTOTO_STATEMENT_V1) problems.push(`_type must be '${INTOTO_STATEMENT_V1}'`);
  if (typeof v.predicateType !== 'string' || !/^[a-z][a-z0-9+.-]*:/i.test(v.predicateType)) {
    problems.push('predicateType must be a URI');
  }
  if (
    v.predicate !== undefined &&
    (typeof v.predicate !== 'object' || v.predicate === null || Array.isArray(v.predicate))
  ) {
    problems.push('predicate must be an object');
  }
  if (!Array.isArray(v.subject) || v.subject.length === 0) {
    problems.push('subject must be a non-empty array');
  } else {
    v.subject.forEach((s: unknown, i: number) => {
      if (typeof s !== 'object' || s === null) return void problems.push(`subject[${i}] is not an object`);
      const sub = s as Record<string, unknown>;
      if (sub.name !== undefined && typeof sub.name !== 'string') problems.push(`subject[${i}].name must be a string`);
      if (
        typeof sub.digest !== 'object' ||
        sub.digest === null ||
        Array.isArray(sub.digest) ||
        Object.keys(sub.digest).length === 0
      ) {
        return void problems.push(`subject[${i}].digest must be a non-empty object`);
      }
      for (const [alg, hex] of Object.entries(sub.digest as Record<string, unknown>)) {
        if (typeof hex !== 'string' || hex === '') {
          problems.push(`subject[${i}].digest.${alg} must be a non-empty string`);
        } else if ((DIGEST_ALGORITHMS as readonly string[]).includes(alg)) {
          const bytes = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 }[alg as 'sha256'];
          if (!HEX.test(hex) || hex.length !== bytes * 2)
            problems.push(`subject[${i}].digest.${alg} must be ${bytes * 2} lowercase hex characters`);
        }
      }
    });
  }
  if (problems.length > 0) {
    throw new CoreError('INTOTO_STATEMENT_INVALID', `in-toto statement: ${problems.join('; ')}`, {
      details: { problems },
    });
  }
}

export function parseStatement(payload: Uint8Array | string): Statement {
  let value: unknown;
  try {
    value = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));
  } catch (cause) {
    throw new CoreError('INTOTO_STATEMENT_INVALID', 'in-toto statement: payload is not JSON', { cause });
  }
  validateStatement(value);
  return value;
}

/**
 * Finds the subject whose digest matches `artifact` on every algorithm both sides have (at least one).
 * Throws INTOTO_SUBJECT_MISMATCH when none does.
 */
export function findMatchingSubject(statement: Statement, artifact: DigestSet, name?: string): Subject {
  for (const s of statement.subject) {
    if (name !== undefined && s.name !== name) continue;
    let compared = 0;
    let ok = true;
    for (const [alg, hex] of Object.entries(artifact)) {
      // Own properties only: a key like 'constructor' must not reach Object.prototype.
      const theirs = Object.hasOwn(s.digest, alg) ? s.digest[alg] : undefined;
      if (typeof hex !== 'string' || typeof theirs !== 'string') continue;
      compared++;
      if (!digestsEqual(theirs, hex)) ok = false;
    }
    if (compared > 0 && ok) return s;
  }
  const want = Object.entries(artifact)
    .map(([a, h]) => `${a}:${h}`)
    .join(', ');
  throw new CoreError(
    'INTOTO_SUBJECT_MISMATCH',
    `no in-toto subject${name ? ` named '${name}'` : ''} has digest ${want}`,
  );
}
