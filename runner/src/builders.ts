import { RunnerError } from './errors.js';
import { COMMAND_PROFILE, type SandboxProfile } from './sandbox.js';
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
}

/**
 * A builder turns its spec into a sandboxed command. The sandbox, checkout, monitoring, rebuild check and
 * attestation are shared; Bazel and Nix builders will add their offline configuration (repository cache or
 * downloader config, hashed-mirrors) and a nested-sandbox profile here.
 */
export interface Builder {
  readonly type: BuilderSpec['type'];
  plan(ctx: BuildContext): BuildPlan;
}

export class CommandBuilder implements Builder {
  readonly type = 'command' as const;
  constructor(private readonly argv: readonly string[]) {}

  plan(ctx: BuildContext): BuildPlan {
    return { argv: [...this.argv], cwd: ctx.sourceDir, profile: COMMAND_PROFILE };
  }
}

/** The builder for a spec; Bazel and Nix are accepted by the schema but not run yet. */
export function builderFor(spec: BuilderSpec): Builder {
  switch (spec.type) {
    case 'command':
      return new CommandBuilder(spec.argv);
    case 'bazel':
    case 'nix':
      throw new RunnerError('RUNNER_BUILDER_NOT_IMPLEMENTED', `builder.type '${spec.type}' is valid but not implemented by this runner version yet (use 'command')`);
  }
}
