import { createRequire } from 'node:module';
import type * as Semver from 'semver';
import type * as Yaml from 'yaml';

// yaml and semver load on first use, not at import: every `airlock` call that registers a policy command imports
// this package (120 modules between them), and most calls never parse a policy or compare a version.
const load = createRequire(import.meta.url);
let semverModule: typeof Semver | undefined;
let yamlModule: typeof Yaml | undefined;

export const semver = (): typeof Semver => (semverModule ??= load('semver') as typeof Semver);
export const yaml = (): typeof Yaml => (yamlModule ??= load('yaml') as typeof Yaml);
