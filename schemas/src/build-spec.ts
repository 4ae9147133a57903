/**
 * The build spec (build-spec.v1.schema.json), input of `airlock run`. The generated type cannot express the
 * schema's per-builder if/then rules, so the builder is refined here into a union by `type`; the assertion at the
 * end keeps the refinement within the schema's type.
 */
import type { AirlockBuildSpecV1 } from './generated/build-spec.v1.js';
import type { Assignable } from './check.js';

export interface BuildSpec {
  source: SourceSpec;
  builder: BuilderSpec;
  outputs: string[];
  /** Selects one of the operator's mirrors (runner/src/mirror-selection.ts): by name or by its exact URL. */
  mirror?: { name: string; url?: undefined } | { url: string; name?: undefined };
  env?: string[];
  reproducible?: boolean;
  timeoutSeconds?: number;
  image?: ImageSpec;
}

/**
 * OCI image output: the selected outputs as one reproducible layer, pushed to `repository` and signed
 * (build-spec.v1.schema.json `image`; runner/README.md "Image output").
 */
export interface ImageSpec {
  type: 'oci';
  /** `registry-host[:port]/path`, without tag or digest. */
  repository: string;
  /** Tag pushed besides the digest; default: the first 12 hex digits of `source.commit`. */
  tag?: string;
  /** Patterns over the declared outputs' names (the `outputs` glob syntax) to put in the image; default: every output. */
  files?: string[];
  /** Absolute directory in the image the files go under (keeping their relative paths); default `/app`. */
  path?: string;
  entrypoint?: string[];
  /** Default: `path`. */
  workingDir?: string;
  /**
   * Patterns over the output names whose files get mode 0755 (all others 0644). Default: the files the build
   * left executable.
   */
  executable?: string[];
}

export type SourceSpec = AirlockBuildSpecV1['source'];

/** Type aliases, not interfaces: the schema's builder object admits more keys (an index signature). */
export type BuilderSpec = CommandBuilderSpec | BazelBuilderSpec | NixBuilderSpec;
export type CommandBuilderSpec = {
  type: 'command';
  argv: string[];
};
export type BazelBuilderSpec = {
  type: 'bazel';
  targets: string[];
};
export type NixBuilderSpec = {
  type: 'nix';
  file: string;
  attribute: string;
};

export type BuildSpecMatchesSchema = Assignable<BuildSpec, AirlockBuildSpecV1>;
