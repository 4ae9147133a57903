/**
 * The committed types in src/generated are what gen.mjs makes from the schemas today: a schema edited without
 * `npm run gen -w @airlock/schemas` fails here, so the types stay generated from the schemas, never hand-edited.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generate, GENERATED_DIR, SCHEMA_DIR } from '../gen.mjs';

describe('src/generated', () => {
  it('has one module per schema, each identical to what gen.mjs generates now', async () => {
    const fresh = await generate();
    const schemaCount = readdirSync(SCHEMA_DIR).filter((f) => f.endsWith('.schema.json')).length;
    expect(fresh).toHaveLength(schemaCount);
    expect(readdirSync(GENERATED_DIR).sort()).toEqual(fresh.map((g) => g.file).sort());
    const stale = fresh
      .filter((g) => readFileSync(join(GENERATED_DIR, g.file), 'utf8') !== g.content)
      .map((g) => g.file);
    expect(stale, 'run `npm run gen -w @airlock/schemas` and commit the result').toEqual([]);
  });
});
