import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { EXIT, fail, printResult, UsageError, type OutputOptions } from '../output.js';
import { renderHtml, renderMarkdown } from './verify/report-html.js';
import { reportModel } from './verify/report-model.js';
import { addPolicyInputOptions } from './verify/artifact.js';
import { exitCodeFor } from './verify/errors.js';
import { verifyArtifactByPolicy, type ArtifactVerifyFlags } from './verify/evaluate.js';

type ReportFlags = ArtifactVerifyFlags & OutputOptions & { html?: string; md?: string };

/**
 * `airlock report FILE`: the policy verification of `verify artifact`, as a self-contained HTML page (and Markdown
 * for a ticket). Exit codes as verify artifact: the report is written on FAIL too, and the exit code says FAIL.
 */
export function registerReportCommand(program: Command): void {
  addPolicyInputOptions(
    program
      .command('report')
      .description('verify a file against a release policy and write an HTML (and Markdown) report of the chain')
      .argument('<file>', 'the artifact')
      .option('--html <file>', 'write the self-contained HTML report here')
      .option('--md <file>', 'write a Markdown summary here'),
  ).action(async (file: string, flags: ReportFlags) => {
    try {
      if (flags.html === undefined && flags.md === undefined) throw new UsageError('give --html FILE and/or --md FILE');
      const run = await verifyArtifactByPolicy(file, flags);
      const model = reportModel(run);
      if (flags.html !== undefined) write(flags.html, renderHtml(model));
      if (flags.md !== undefined) write(flags.md, renderMarkdown(model));
      printResult(
        flags,
        { ok: model.result === 'PASS', file, result: model.result, html: flags.html ?? null, md: flags.md ?? null },
        () =>
          [`${model.result} ${file}`, ...[flags.html, flags.md].filter((x) => x).map((p) => `  report: ${p}`)].join(
            '\n',
          ),
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
