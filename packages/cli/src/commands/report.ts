import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { PolicyRun } from '@airlock/policy';
import { EXIT, fail, printResult, UsageError, type OutputOptions } from '../output.js';
import { renderHtml, renderMarkdown } from './verify/report-html.js';
import { reportModel } from './verify/report-model.js';
import { addPolicyInputOptions } from './verify/artifact.js';
import { exitCodeFor } from './verify/errors.js';
import { verifyArtifactByPolicy, type ArtifactVerifyFlags } from './verify/evaluate.js';
import { verifyImageRef } from './verify/image.js';
import { addRegistryOptions, looksLikeImageRef, type RegistryFlags } from './verify/registry.js';

type ReportFlags = ArtifactVerifyFlags & RegistryFlags & OutputOptions & { html?: string; md?: string };

/**
 * `airlock report FILE|REF`: the policy verification of `verify artifact` (or `verify image` for an image
 * reference, its tag resolved to a digest first), as a self-contained HTML page (and Markdown for a ticket). Exit
 * codes as verify: the report is written on FAIL too, and the exit code says FAIL.
 */
export function registerReportCommand(program: Command): void {
  addRegistryOptions(
    addPolicyInputOptions(
      program
        .command('report')
        .description('verify a file or an image against a release policy and write an HTML (and Markdown) report')
        .argument('<file|ref>', 'the artifact, or an image host[:port]/repository(:tag|@sha256:…)')
        .option('--html <file>', 'write the self-contained HTML report here')
        .option('--md <file>', 'write a Markdown summary here'),
    ),
  ).action(async (operand: string, flags: ReportFlags) => {
    try {
      if (flags.html === undefined && flags.md === undefined) throw new UsageError('give --html FILE and/or --md FILE');
      const image = looksLikeImageRef(operand);
      if (image && flags.bundle && flags.bundle.length > 0)
        throw new UsageError('an image’s bundles are read from the registry: --bundle is for files');
      const run: PolicyRun = image
        ? await verifyImageRef(operand, flags)
        : await verifyArtifactByPolicy(operand, flags);
      const model = reportModel(run);
      if (flags.html !== undefined) write(flags.html, renderHtml(model));
      if (flags.md !== undefined) write(flags.md, renderMarkdown(model));
      const what = image ? { image: run.resourceUri } : { file: operand };
      printResult(
        flags,
        { ok: model.result === 'PASS', ...what, result: model.result, html: flags.html ?? null, md: flags.md ?? null },
        () =>
          [
            `${model.result} ${run.resourceUri}`,
            ...[flags.html, flags.md].filter((x) => x).map((p) => `  report: ${p}`),
          ].join('\n'),
      );
      process.exitCode = model.result === 'PASS' ? EXIT.OK : EXIT.FAILURE;
    } catch (err) {
      fail(flags, err, exitCodeFor(err));
    }
  });
}

function write(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (err) {
    throw new UsageError(`cannot write '${path}': ${(err as Error).message}`);
  }
}
