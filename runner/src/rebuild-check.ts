import { limitError } from './limits/index.js';
import {
  exitDescription,
  executeAttempt,
  failOnViolations,
  prepareAttempt,
  type Attempt,
  type RunContext,
} from './attempt.js';
import { RunnerError } from './errors.js';
import { collectOutputs, type OutputFile } from './outputs.js';
import {
  compareOutputs,
  describeDifferences,
  diffoscopeSummary,
  type RebuildVariations,
  type ReproducibilityResult,
} from './reproducibility.js';

export interface RebuildCheckResult {
  reproducibility: ReproducibilityResult;
  rebuildMs?: number;
  rebuildLogPath?: string;
}

/**
 * The rebuild check (`reproducible: true`): a fresh checkout of the same tree built under another path, hostname,
 * HOME, environment noise and (with faketime) clock; the outputs must have the same sha256. Throws
 * RUNNER_REPRODUCIBILITY_FAILED naming the differences (and diffoscope's report when installed).
 */
export async function rebuildCheck(
  ctx: RunContext,
  first: Attempt,
  firstOutputs: readonly OutputFile[],
  progress: (phase: 'rebuild' | 'compare', message: string) => void,
): Promise<RebuildCheckResult> {
  if (!ctx.spec.reproducible) return { reproducibility: { status: 'not-requested' } };
  progress('rebuild', 'rebuilding in a different path, hostname, environment and time');
  const second = await prepareAttempt(ctx, 'rebuild');
  if (second.source.treeSha256 !== first.source.treeSha256) {
    throw new RunnerError('RUNNER_SOURCE_FAILED', 'the rebuild checked out a different tree than the first build');
  }
  await executeAttempt(ctx, second);
  failOnViolations(ctx, second);
  if (second.result.limitExceeded) throw limitError(second.result.limitExceeded, 'rebuild', second.logPath);
  const details = { logPath: first.logPath, rebuildLogPath: second.logPath };
  if (second.result.exitCode !== 0 || second.result.timedOut) {
    throw new RunnerError(
      'RUNNER_REPRODUCIBILITY_FAILED',
      `not reproducible: the rebuild failed (${exitDescription(second.result, ctx.timeoutSeconds)}) although the first build succeeded; log: ${second.logPath}`,
      { details },
    );
  }
  progress('compare', 'comparing output digests');
  const secondOutputs = await rebuildOutputs(ctx, second, details);
  const variations = rebuildVariations(ctx);
  const differences = compareOutputs(first.layout.out.host, firstOutputs, second.layout.out.host, secondOutputs);
  if (differences.length > 0) {
    const diffoscope = await diffoscopeSummary(first.layout.out.host, second.layout.out.host, differences);
    const result: ReproducibilityResult = {
      status: 'differs',
      differences,
      variations,
      ...(diffoscope ? { diffoscope } : {}),
    };
    throw new RunnerError(
      'RUNNER_REPRODUCIBILITY_FAILED',
      `not reproducible: ${differences.length} output${differences.length > 1 ? 's differ' : ' differs'} between two builds of ${ctx.spec.source.commit}: ${describeDifferences(differences)}${diffoscope ? `\ndiffoscope:\n${diffoscope}` : ''}`,
      { details: { differences, reproducibility: result, ...details } },
    );
  }
  return {
    reproducibility: {
      status: 'reproduced',
      files: firstOutputs.length,
      variations,
      rebuildDurationMs: second.result.durationMs,
    },
    rebuildMs: second.result.durationMs,
    rebuildLogPath: second.logPath,
  };
}

function rebuildVariations(ctx: RunContext): RebuildVariations {
  return {
    buildPath: true,
    hostname: true,
    home: true,
    environmentNoise: true,
    time: ctx.tools.faketime && ctx.builder.supportsFaketime !== false ? 'faketime' : 'wall-clock',
  };
}

/** The rebuild's outputs; one the rebuild did not produce is a reproducibility failure, not a build failure. */
async function rebuildOutputs(
  ctx: RunContext,
  second: Attempt,
  details: { logPath: string; rebuildLogPath: string },
): Promise<OutputFile[]> {
  try {
    return await collectOutputs(second.layout.out.host, ctx.spec.outputs);
  } catch (err) {
    if ((err as { code?: string }).code !== 'RUNNER_OUTPUT_MISSING') throw err;
    throw new RunnerError(
      'RUNNER_REPRODUCIBILITY_FAILED',
      `not reproducible: ${(err as Error).message} by the rebuild`,
      {
        details,
        cause: err,
      },
    );
  }
}
