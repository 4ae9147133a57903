import type { Command } from 'commander';
import { registerConformanceCommands } from './commands/conformance.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerPlaneCommands } from './commands/plane.js';
import { registerSignCommands } from './commands/sign.js';
import { registerVerifyCommand } from './commands/verify.js';
import { registerSyncCommand } from './commands/sync.js';
import { registerMirrorCommands } from './commands/mirror.js';
import { registerRunCommand } from './commands/run.js';
import { registerReportCommand } from './commands/report.js';
import { registerAdmissionCommands } from './commands/admission.js';
import { applyCliContract, newProgram } from './program-base.js';

export { VERSION, wantsJson } from './program-base.js';

/** Every command, registered eagerly: the contract test and documentation walk this tree. */
export function buildProgram(): Command {
  const program = newProgram();
  registerDemoCommand(program);
  registerPlaneCommands(program);
  registerSignCommands(program);
  registerVerifyCommand(program);
  registerSyncCommand(program);
  registerMirrorCommands(program);
  registerRunCommand(program);
  registerReportCommand(program);
  registerAdmissionCommands(program);
  registerConformanceCommands(program);
  applyCliContract(program);
  return program;
}
