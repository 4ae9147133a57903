import { Command } from 'commander';
import { registerConformanceCommands } from './commands/conformance.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerPlaneCommands } from './commands/plane.js';
import { registerSignCommands } from './commands/sign.js';
import { registerVerifyCommand } from './commands/verify.js';
import { registerSyncCommand } from './commands/sync.js';
import { registerMirrorCommands } from './commands/mirror.js';
import { registerRunCommand } from './commands/run.js';
import { registerReportCommand } from './commands/report.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('airlock')
    .version(VERSION)
    .description('Hermetic builds and provenance inside an air-gapped perimeter. Start with `airlock demo`.')
    .addHelpText(
      'after',
      [
        '',
        'Trust plane:  `airlock up --data DIR` runs the transparency log, CA and workload-identity issuer;',
        '              `airlock sign` / `attest` sign through it; `airlock verify` checks a bundle against',
        '              DIR/trusted_root.json and an identity policy.',
        'Mirror:       `airlock sync` (outside) writes a signed transfer bundle from pinned lockfiles;',
        '              `airlock mirror import` verifies and publishes it; `airlock mirror serve` serves',
        '              npm, pip, Nix and Bazel clients from it.',
        'Builds:       `airlock run --spec FILE` builds a commit in a sandbox whose only endpoint is the mirror,',
        '              checks reproducibility, and writes signed SLSA provenance and a CycloneDX SBOM per output.',
        '',
        'Progress goes to stderr; --json prints a machine-readable result on stdout.',
        'Exit codes: 0 ok, 1 a check failed, 2 usage or input error, 3 a service is unavailable.',
      ].join('\n'),
    )
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false });
  registerDemoCommand(program);
  registerPlaneCommands(program);
  registerSignCommands(program);
  registerVerifyCommand(program);
  registerSyncCommand(program);
  registerMirrorCommands(program);
  registerRunCommand(program);
  registerReportCommand(program);
  registerConformanceCommands(program);
  program.exitOverride((err) => {
    // commander's own usage errors (unknown option, missing argument) → exit 2, like other CLIs.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
  return program;
}
