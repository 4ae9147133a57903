/**
 * @airlock/schemas: the repository's shared contracts, defined once. The JSON Schemas (`@airlock/schemas/<name>
 * .schema.json`), the types generated from them (src/generated, by gen.mjs) and refined where the generator cannot
 * follow the schema, the predicate-type / buildType URIs, and the one ajv loader every package validates with.
 */
export * from './uris.js';
export * from './loader.js';
export type * from './contracts.js';
export * from './transfer-manifest.js';
export type * from './build-spec.js';
export type { Assignable } from './check.js';
export type { AirlockTransferManifestV1 } from './generated/transfer-manifest.v1.js';
export type { AirlockBuildSpecV1 } from './generated/build-spec.v1.js';
