/** What a builder hands the runner (kept apart from builders.ts so the builders do not import their registry). */
import type { SandboxProfile } from './sandbox.js';
import type { BuilderSpec } from './spec.js';

/** Where things are inside the sandbox, as a builder sees them. */
export interface BuildContext {
  sourceDir: string;
  outputDir: string;
  /** AIRLOCK_MIRROR_URL inside the sandbox, when there is a mirror. */
  mirrorUrl?: string;
}

/** What to run in the sandbox and how the sandbox must be shaped for it. */
export interface BuildPlan {
  argv: string[];
  cwd: string;
  profile: SandboxProfile;
  /** Extra variables the builder needs (e.g. tool config paths); must not override the runner's. */
  env?: Record<string, string>;
  /** Runner plumbing files (name → content) bound read-only at /airlock/<name>, e.g. a builder's driver script. */
  files?: Record<string, string>;
  /** argv runs /airlock/bin/node (a builder driver): Node is bound even without a mirror. */
  needsNode?: boolean;
  /**
   * Host files (by their sandbox path) that belong to the toolchain although the trace may not show them executed:
   * a server jar, the tool's own binaries and libraries. Recorded by digest like executed programs.
   */
  toolchainFiles?: string[];
  /** What the build runs, for failure messages (default: argv[0]). */
  describe?: string;
}

/**
 * A builder turns its spec into a sandboxed command. The sandbox, checkout, monitoring, rebuild check and
 * attestation are shared; the Bazel and Nix builders (bazel-builder.ts, nix-builder.ts) add a driver that
 * feeds the tool only from the mirror by digest, and a nested-sandbox profile.
 */
export interface Builder {
  readonly type: BuilderSpec['type'];
  /**
   * Whether the rebuild may run under faketime (default true). False when the shifted clock could not reach the
   * build steps anyway (Nix clears its builders' environment), so the rebuild record says 'wall-clock'.
   */
  readonly supportsFaketime?: boolean;
  plan(ctx: BuildContext): BuildPlan;
}
