import { describe, expect, it } from 'vitest';
import {
  findMatchingSubject,
  INTOTO_STATEMENT_V1,
  makeStatement,
  parseStatement,
  validateStatement,
  type Statement,
} from '../src/intoto.js';
import { AirlockError } from '../src/errors.js';

const SHA256_A = 'a'.repeat(64);
const SHA256_B = 'b'.repeat(64);
const SHA512_A = 'c'.repeat(128);
const PREDICATE = 'https://slsa.dev/provenance/v1';

function problemsOf(value: unknown): string[] {
  try {
    validateStatement(value);
  } catch (err) {
    expect(err).toBeInstanceOf(AirlockError);
    expect((err as AirlockError).code).toBe('INTOTO_STATEMENT_INVALID');
    return ((err as AirlockError).details?.problems as string[] | undefined) ?? [(err as Error).message];
  }
  return [];
}

const valid = (): Record<string, unknown> => ({
  _type: INTOTO_STATEMENT_V1,
  subject: [{ name: 'pkg.tgz', digest: { sha256: SHA256_A } }],
  predicateType: PREDICATE,
  predicate: { buildDefinition: {} },
});

describe('makeStatement / validateStatement', () => {
  it('makes a Statement v1', () => {
    const s = makeStatement([{ name: 'a', digest: { sha256: SHA256_A } }], PREDICATE, { x: 1 });
    expect(s).toEqual({
      _type: 'https://in-toto.io/Statement/v1',
      subject: [{ name: 'a', digest: { sha256: SHA256_A } }],
      predicateType: PREDICATE,
      predicate: { x: 1 },
    });
  });

  it('accepts a valid statement, unnamed subjects, unknown digest algorithms and no predicate', () => {
    expect(problemsOf(valid())).toEqual([]);
    expect(problemsOf({ ...valid(), subject: [{ digest: { sha512: SHA512_A, gitCommit: 'abc123' } }] })).toEqual([]);
    const { predicate: _p, ...noPredicate } = valid();
    expect(problemsOf(noPredicate)).toEqual([]);
  });

  it('makeStatement refuses an empty subject list', () => {
    expect(() => makeStatement([], PREDICATE, {})).toThrow(/subject must be a non-empty array/);
  });

  it('rejects a wrong _type', () => {
    expect(problemsOf({ ...valid(), _type: 'https://in-toto.io/Statement/v0.1' })).toEqual([
      `_type must be '${INTOTO_STATEMENT_V1}'`,
    ]);
  });

  it('rejects non-objects outright', () => {
    for (const v of [null, 'x', 1, [valid()]]) expect(problemsOf(v)).toHaveLength(1);
  });

  it('rejects bad digests: uppercase, wrong length, non-hex, empty, non-string, array', () => {
    const digestProblems = (digest: unknown): string[] => problemsOf({ ...valid(), subject: [{ name: 'x', digest }] });
    expect(digestProblems({ sha256: SHA256_A.toUpperCase() })).toEqual([
      'subject[0].digest.sha256 must be 64 lowercase hex characters',
    ]);
    expect(digestProblems({ sha256: SHA256_A.slice(1) })).toHaveLength(1);
    expect(digestProblems({ sha1: SHA256_A })).toEqual(['subject[0].digest.sha1 must be 40 lowercase hex characters']);
    expect(digestProblems({ sha512: 'z'.repeat(128) })).toHaveLength(1);
    expect(digestProblems({ sha256: 5 })).toEqual(['subject[0].digest.sha256 must be a non-empty string']);
    expect(digestProblems({ gitCommit: '' })).toEqual(['subject[0].digest.gitCommit must be a non-empty string']);
    expect(digestProblems({})).toEqual(['subject[0].digest must be a non-empty object']);
    expect(digestProblems(null)).toEqual(['subject[0].digest must be a non-empty object']);
    expect(digestProblems([SHA256_A])).toEqual(['subject[0].digest must be a non-empty object']);
  });

  it('rejects an empty or missing subject', () => {
    expect(problemsOf({ ...valid(), subject: [] })).toEqual(['subject must be a non-empty array']);
    expect(problemsOf({ ...valid(), subject: undefined })).toEqual(['subject must be a non-empty array']);
    expect(problemsOf({ ...valid(), subject: { name: 'x', digest: { sha256: SHA256_A } } })).toEqual([
      'subject must be a non-empty array',
    ]);
  });

  it('collects every problem into one error', () => {
    const problems = problemsOf({
      _type: 'nope',
      predicateType: 'not a uri',
      predicate: [1],
      subject: [{ name: 3, digest: { sha256: 'XYZ' } }, 'str', { digest: {} }],
    });
    expect(problems).toEqual([
      `_type must be '${INTOTO_STATEMENT_V1}'`,
      'predicateType must be a URI',
      'predicate must be an object',
      'subject[0].name must be a string',
      'subject[0].digest.sha256 must be 64 lowercase hex characters',
      'subject[1] is not an object',
      'subject[2].digest must be a non-empty object',
    ]);
    try {
      validateStatement({ _type: 'nope', predicateType: 1, subject: [] });
      expect.unreachable();
    } catch (err) {
      expect((err as Error).message).toContain('_type');
      expect((err as Error).message).toContain('predicateType');
      expect((err as Error).message).toContain('subject');
    }
  });

  it('parseStatement parses bytes or text and rejects non-JSON', () => {
    const text = JSON.stringify(valid());
    expect(parseStatement(text).predicateType).toBe(PREDICATE);
    expect(parseStatement(Buffer.from(text)).subject[0]!.name).toBe('pkg.tgz');
    try {
      parseStatement('{nope');
      expect.unreachable();
    } catch (err) {
      expect((err as AirlockError).code).toBe('INTOTO_STATEMENT_INVALID');
      expect((err as AirlockError).cause).toBeInstanceOf(SyntaxError);
    }
  });
});

describe('findMatchingSubject', () => {
  const statement = makeStatement(
    [
      { name: 'a.tgz', digest: { sha256: SHA256_A, sha512: SHA512_A } },
      { name: 'b.tgz', digest: { sha256: SHA256_B } },
      { name: 'a-copy.tgz', digest: { sha256: SHA256_A } },
    ],
    PREDICATE,
    {},
  ) as Statement;

  it('matches by digest on every shared algorithm (case-insensitively)', () => {
    expect(findMatchingSubject(statement, { sha256: SHA256_B }).name).toBe('b.tgz');
    expect(findMatchingSubject(statement, { sha256: SHA256_A.toUpperCase() }).name).toBe('a.tgz');
    expect(findMatchingSubject(statement, { sha512: SHA512_A }).name).toBe('a.tgz');
  });

  it('mismatches when any shared algorithm differs', () => {
    // a.tgz fails on sha512; a-copy.tgz has only sha256, which matches, so it is the one returned.
    expect(findMatchingSubject(statement, { sha256: SHA256_A, sha512: 'd'.repeat(128) }).name).toBe('a-copy.tgz');
    expect(() => findMatchingSubject(statement, { sha256: 'e'.repeat(64) })).toThrow(
      expect.objectContaining({ code: 'INTOTO_SUBJECT_MISMATCH' }),
    );
  });

  it('needs at least one algorithm in common', () => {
    expect(() => findMatchingSubject(statement, { sha1: 'f'.repeat(40) })).toThrow(
      expect.objectContaining({ code: 'INTOTO_SUBJECT_MISMATCH' }),
    );
    expect(() => findMatchingSubject(statement, {})).toThrow(
      expect.objectContaining({ code: 'INTOTO_SUBJECT_MISMATCH' }),
    );
  });

  it('filters by name', () => {
    expect(findMatchingSubject(statement, { sha256: SHA256_A }, 'a-copy.tgz').name).toBe('a-copy.tgz');
    try {
      findMatchingSubject(statement, { sha256: SHA256_A }, 'b.tgz');
      expect.unreachable();
    } catch (err) {
      expect((err as AirlockError).code).toBe('INTOTO_SUBJECT_MISMATCH');
      expect((err as Error).message).toContain("named 'b.tgz'");
    }
  });

  it('ignores inherited properties of the subject digest object', () => {
    const s = makeStatement([{ name: 'x', digest: { sha256: SHA256_A } }], PREDICATE, {}) as Statement;
    const weird = { constructor: 'abc' } as unknown as Record<string, string>;
    expect(() => findMatchingSubject(s, weird)).toThrow(expect.objectContaining({ code: 'INTOTO_SUBJECT_MISMATCH' }));
  });
});
