import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import type { Contracts } from './contracts.js';

/** Every JSON Schema of the repository, by name (the file name without `.schema.json`). */
export const SCHEMA_FILES = {
  'admission-policy.v1': 'admission-policy.v1.schema.json',
  'build-spec.v1': 'build-spec.v1.schema.json',
  'mirror-blob-lookup.v1': 'mirror-blob-lookup.v1.schema.json',
  'mirror-snapshot-lookup.v1': 'mirror-snapshot-lookup.v1.schema.json',
  'node-attestation-claims.v1': 'node-attestation-claims.v1.schema.json',
  'policy.v1': 'policy.v1.schema.json',
  'slsa-buildtype-airlock-v1': 'slsa-buildtype-airlock-v1.schema.json',
  'sync-bazel-fetch-list': 'sync-bazel-fetch-list.schema.json',
  'sync-generic-list': 'sync-generic-list.schema.json',
  'sync-nix-fetch-list': 'sync-nix-fetch-list.schema.json',
  'sync-nix-show-derivation': 'sync-nix-show-derivation.schema.json',
  'sync-npm-lockfile': 'sync-npm-lockfile.schema.json',
  'sync-requirements': 'sync-requirements.schema.json',
  'sync-state.v1': 'sync-state.v1.schema.json',
  'transfer-manifest.v1': 'transfer-manifest.v1.schema.json',
} as const;

export type SchemaName = keyof typeof SCHEMA_FILES;

/** SCHEMA_UNAVAILABLE: the schema file is missing, unreadable or not a valid schema; SCHEMA_MISMATCH: a value fails it. */
export type SchemaErrorCode = 'SCHEMA_UNAVAILABLE' | 'SCHEMA_MISMATCH';

/**
 * What the loader throws. This package is a leaf (it depends only on ajv), so it cannot extend @airlock/core's
 * AirlockError: callers pass an `error` factory that wraps it into their own typed error.
 */
export class SchemaError extends Error {
  constructor(
    readonly code: SchemaErrorCode,
    message: string,
    readonly schema: string,
    readonly problems: readonly string[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SchemaError';
  }
}

/** Turns a SchemaError into the caller's own typed error. */
export type SchemaErrorFactory = (e: SchemaError) => Error;

/** How field names are written in problem lines. */
export interface FieldStyle {
  /** Prefix of every field (`policy` → `policy.provenance.builderIds[0]`); default none. */
  root?: string;
  /** Name of the document itself when the problem is at the top level; default `root`, else `(top level)`. */
  top?: string;
  /** Renders a non-empty path itself (e.g. `entry 3 at /sha256`), instead of the dotted form. */
  where?: (segments: readonly string[]) => string;
  /** A clearer message for a `pattern`/`not` failure at this instance path (the pattern itself helps nobody). */
  hint?: (instancePath: string) => string | undefined;
}

export interface ValidateOptions {
  /** What the value is, for the message (`build spec /x/spec.yaml`); default `value`. */
  what?: string;
  style?: FieldStyle;
  error?: SchemaErrorFactory;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** Locates a schema file; the default resolves `@airlock/schemas/<file>` through the package's own exports. */
export type SchemaLocator = (file: string) => string;

const require = createRequire(import.meta.url);
export const resolveSchemaFile: SchemaLocator = (file) => require.resolve(`@airlock/schemas/${file}`);

/** Compiles each schema once, with strict ajv (a sloppy schema is a bug, not a warning). */
export class SchemaLoader {
  private ajv: Ajv | undefined;
  private readonly compiled = new Map<SchemaName, ValidateFunction>();

  constructor(private readonly locate: SchemaLocator = resolveSchemaFile) {}

  validatorFor(name: SchemaName, error: SchemaErrorFactory = (e) => e): ValidateFunction {
    const hit = this.compiled.get(name);
    if (hit) return hit;
    const file = SCHEMA_FILES[name];
    let fn: ValidateFunction;
    try {
      const schema = JSON.parse(readFileSync(this.locate(file), 'utf8')) as object;
      // ajv (60 modules) loads with the first schema compiled, not when a CLI call merely imports this package.
      this.ajv ??= new (require('ajv') as typeof import('ajv')).Ajv({ strict: true, allErrors: true });
      fn = this.ajv.compile(schema);
    } catch (cause) {
      const e = new SchemaError(
        'SCHEMA_UNAVAILABLE',
        `cannot load JSON Schema ${file}: ${(cause as Error).message}`,
        file,
        [],
        { cause },
      );
      throw error(e);
    }
    this.compiled.set(name, fn);
    return fn;
  }

  /** Problem lines naming each offending field; empty when `value` matches. */
  problems(name: SchemaName, value: unknown, style: FieldStyle = {}, error?: SchemaErrorFactory): string[] {
    const fn = this.validatorFor(name, error);
    return fn(value) ? [] : formatSchemaErrors(fn.errors ?? [], style);
  }

  /** The value typed as the schema's contract, or the problem lines. */
  check<N extends SchemaName>(
    name: N,
    value: unknown,
    style: FieldStyle = {},
    error?: SchemaErrorFactory,
  ): Checked<Contracts[N]> {
    const problems = this.problems(name, value, style, error);
    return problems.length === 0 ? { ok: true, value: value as Contracts[N] } : { ok: false, problems };
  }

  /** Throws SCHEMA_MISMATCH (through `error`) with one line per problem unless `value` matches the schema. */
  validate<N extends SchemaName>(
    name: N,
    value: unknown,
    options: ValidateOptions = {},
  ): asserts value is Contracts[N] {
    const error = options.error ?? ((e) => e);
    const problems = this.problems(name, value, options.style, error);
    if (problems.length === 0) return;
    const file = SCHEMA_FILES[name];
    const message = `${options.what ?? 'value'} does not match ${file}:\n  - ${problems.join('\n  - ')}`;
    throw error(new SchemaError('SCHEMA_MISMATCH', message, file, problems));
  }
}

/** The repository's one loader. */
export const schemas: SchemaLoader = new SchemaLoader();

export function validatorFor(name: SchemaName, error?: SchemaErrorFactory): ValidateFunction {
  return schemas.validatorFor(name, error);
}

export function schemaProblems(
  name: SchemaName,
  value: unknown,
  style?: FieldStyle,
  error?: SchemaErrorFactory,
): string[] {
  return schemas.problems(name, value, style, error);
}

export function check<N extends SchemaName>(
  name: N,
  value: unknown,
  style?: FieldStyle,
  error?: SchemaErrorFactory,
): Checked<Contracts[N]> {
  return schemas.check(name, value, style, error);
}

export function validate<N extends SchemaName>(
  name: N,
  value: unknown,
  options?: ValidateOptions,
): asserts value is Contracts[N] {
  schemas.validate(name, value, options);
}

function unescape(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** `/provenance/builderIds/0` under root `policy` → `policy.provenance.builderIds[0]`. */
export function fieldName(instancePath: string, style: FieldStyle = {}): string {
  const segments = instancePath.split('/').slice(1).map(unescape);
  const root = style.root ?? '';
  if (segments.length === 0) return style.top ?? (root || '(top level)');
  if (style.where) return style.where(segments);
  return segments.reduce(
    (acc, p) =>
      /^\d+$/.test(p)
        ? `${acc}[${p}]`
        : /^[A-Za-z0-9_$-]+$/.test(p)
          ? acc === ''
            ? p
            : `${acc}.${p}`
          : `${acc}[${JSON.stringify(p)}]`,
    root,
  );
}

function escape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * One line per problem, naming the field. if/then and propertyNames wrappers are dropped (their inner errors say
 * what is wrong); an unknown key is named as a field of its own; enum/const say what was allowed.
 */
export function formatSchemaErrors(errors: readonly ErrorObject[], style: FieldStyle = {}): string[] {
  const out = new Set<string>();
  for (const e of errors.slice(0, 50)) {
    if (e.keyword === 'if' || e.keyword === 'propertyNames') continue;
    if (e.keyword === 'additionalProperties') {
      const key = String((e.params as { additionalProperty?: unknown }).additionalProperty);
      out.add(`${fieldName(`${e.instancePath}/${escape(key)}`, style)}: unknown field`);
      continue;
    }
    let message = e.message ?? e.keyword;
    if (e.keyword === 'const') message += ` ${JSON.stringify((e.params as { allowedValue?: unknown }).allowedValue)}`;
    if (e.keyword === 'enum')
      message += `: ${((e.params as { allowedValues?: unknown[] }).allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}`;
    if (e.keyword === 'not' || e.keyword === 'pattern') message = style.hint?.(e.instancePath) ?? message;
    if (e.propertyName !== undefined) {
      out.add(`${fieldName(`${e.instancePath}/${escape(e.propertyName)}`, style)}: invalid name (${message})`);
      continue;
    }
    out.add(`${fieldName(e.instancePath, style)}: ${message}`);
  }
  if (errors.length > 50) out.add(`… and ${errors.length - 50} more`);
  return [...out];
}
