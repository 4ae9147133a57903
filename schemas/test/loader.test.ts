/**
 * The one ajv loader: schemas found through the package's exports, compiled once, problems naming the field,
 * and a typed error (or the caller's own, through the factory) when a schema is missing or a value fails it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  SCHEMA_FILES,
  SchemaError,
  SchemaLoader,
  resolveSchemaFile,
  schemaProblems,
  validate,
  validatorFor,
  type SchemaName,
} from '../src/index.js';

const empty = mkdtempSync(join(tmpdir(), 'airlock-schemas-'));
afterAll(() => rmSync(empty, { recursive: true, force: true }));

class OwnError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

describe('schema files', () => {
  it('resolves every schema through @airlock/schemas exports, at the package root', () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    for (const file of Object.values(SCHEMA_FILES)) expect(resolveSchemaFile(file)).toBe(join(root, file));
  });

  it('compiles every schema in strict mode, once', () => {
    for (const name of Object.keys(SCHEMA_FILES) as SchemaName[]) {
      expect(validatorFor(name)).toBe(validatorFor(name));
    }
  });
});

describe('a missing schema', () => {
  const loader = new SchemaLoader((file) => join(empty, file));

  it('is SCHEMA_UNAVAILABLE naming the file', () => {
    let caught: unknown;
    try {
      loader.validatorFor('sync-state.v1');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(SchemaError);
    expect(caught).toMatchObject({ code: 'SCHEMA_UNAVAILABLE', schema: 'sync-state.v1.schema.json' });
    expect((caught as Error).message).toMatch(/^cannot load JSON Schema sync-state\.v1\.schema\.json: ENOENT/);
  });

  it('goes through the caller’s error factory', () => {
    expect(() =>
      loader.validate('sync-state.v1', {}, { error: (e) => new OwnError(`OWN_${e.code}`, e.message) }),
    ).toThrow(expect.objectContaining({ code: 'OWN_SCHEMA_UNAVAILABLE' }));
  });
});

describe('problems name the field', () => {
  const state = {
    version: 1,
    snapshotId: `sha256:${'a'.repeat(64)}`,
    sequence: 1,
    createdAt: '2026-01-01T00:00:00Z',
    bundleSha256: 'b'.repeat(64),
  };

  it('accepts a matching value', () => {
    expect(schemaProblems('sync-state.v1', state)).toEqual([]);
    expect(() => validate('sync-state.v1', state)).not.toThrow();
  });

  it('names unknown, missing and wrong fields, with the root prefix and allowed values', () => {
    const { sequence: _s, ...noSequence } = state;
    expect(schemaProblems('sync-state.v1', { ...noSequence, version: 2, extra: true }, { root: 'state' })).toEqual([
      "state: must have required property 'sequence'",
      'state.extra: unknown field',
      'state.version: must be equal to constant 1',
    ]);
  });

  it('writes array indexes and nested paths in dotted form, with the caller’s hint or `where`', () => {
    const spec = {
      source: { repo: 'r', commit: 'c'.repeat(40) },
      builder: { type: 'command', argv: [] },
      outputs: ['ok', '../x'],
    };
    expect(schemaProblems('build-spec.v1', spec)).toEqual([
      'builder.argv: must NOT have fewer than 1 items',
      'outputs[1]: must NOT be valid',
    ]);
    expect(
      schemaProblems('build-spec.v1', spec, { hint: (p) => (p === '/outputs/1' ? 'must be relative' : undefined) }),
    ).toContain('outputs[1]: must be relative');
    expect(
      schemaProblems('build-spec.v1', spec, { where: (s) => `entry ${s[0]} at /${s.slice(1).join('/')}` }),
    ).toEqual(['entry builder at /argv: must NOT have fewer than 1 items', 'entry outputs at /1: must NOT be valid']);
  });

  it('throws SCHEMA_MISMATCH saying what failed, with every problem line', () => {
    let caught: unknown;
    try {
      validate('sync-state.v1', { ...state, sequence: 0 }, { what: 'state file s.json' });
    } catch (e) {
      caught = e;
    }
    expect(caught).toMatchObject({
      code: 'SCHEMA_MISMATCH',
      schema: 'sync-state.v1.schema.json',
      problems: ['sequence: must be >= 1'],
    });
    expect((caught as Error).message).toBe(
      'state file s.json does not match sync-state.v1.schema.json:\n  - sequence: must be >= 1',
    );
  });
});
