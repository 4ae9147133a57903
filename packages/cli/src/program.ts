import { Command } from 'commander';
import { registerConformanceCommands } from './commands/conformance.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerPlaneCommands } from './commands/plane.js';
import { registerSignCommands } from './commands/sign.js';
import { registerVerifyCommand } from './commands/verify.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('airlock')
    .version(VERSION)
    .description(
      'Hermetic builds and provenance inside an air-gapped perimeter.\n\n' +
        'Start with `airlock demo`. Typical flow: `airlock up --data DIR` runs the trust plane (transparency log,\n' +
        'CA, workload identity); `airlock sign` / `airlock attest` sign through it; `airlock verify` checks a\n' +
        'bundle against DIR/trusted_root.json and an identity policy.',
    )
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false });
  registerDemoCommand(program);
  registerPlaneCommands(program);
  registerSignCommands(program);
  registerVerifyCommand(program);
  registerConformanceCommands(program);
  program.exitOverride((err) => {
    // commander's own usage errors (unknown option, missing argument) → exit 2, like other CLIs.
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
  return program;
}
