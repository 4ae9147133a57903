import { BazelBuilder } from './bazel-builder.js';
import { NixBuilder } from './nix-builder.js';
import type { BuildContext, BuildPlan, Builder } from './build-plan.js';
import { COMMAND_PROFILE } from './sandbox.js';
import type { BuilderSpec } from './spec.js';

export type { BuildContext, BuildPlan, Builder } from './build-plan.js';

export class CommandBuilder implements Builder {
  readonly type = 'command' as const;
  constructor(private readonly argv: readonly string[]) {}

  plan(ctx: BuildContext): BuildPlan {
    return { argv: [...this.argv], cwd: ctx.sourceDir, profile: COMMAND_PROFILE };
  }
}

/** The builder for a (validated) spec. */
export function builderFor(spec: BuilderSpec): Builder {
  switch (spec.type) {
    case 'command':
      return new CommandBuilder(spec.argv);
    case 'bazel':
      return new BazelBuilder(spec.targets);
    case 'nix':
      return new NixBuilder(spec.file, spec.attribute);
  }
}
