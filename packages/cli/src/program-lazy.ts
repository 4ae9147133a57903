import type { Command } from 'commander';
import { applyCliContract, newProgram } from './program-base.js';

type Register = (program: Command) => void;

/**
 * Which module registers which top-level commands, in help order. Loading every command's implementation (and its
 * dependencies) took over a second per call, so a call names its command and only that module is loaded.
 * test/cli-lazy-program.test.ts checks this table against buildProgram().
 */
export const COMMAND_MODULES: ReadonlyArray<{ names: readonly string[]; load: () => Promise<Register> }> = [
  { names: ['demo'], load: async () => (await import('./commands/demo.js')).registerDemoCommand },
  { names: ['up', 'identity', 'tlog'], load: async () => (await import('./commands/plane.js')).registerPlaneCommands },
  { names: ['sign', 'attest'], load: async () => (await import('./commands/sign.js')).registerSignCommands },
  { names: ['verify'], load: async () => (await import('./commands/verify.js')).registerVerifyCommand },
  { names: ['sync'], load: async () => (await import('./commands/sync.js')).registerSyncCommand },
  { names: ['mirror'], load: async () => (await import('./commands/mirror.js')).registerMirrorCommands },
  { names: ['run'], load: async () => (await import('./commands/run.js')).registerRunCommand },
  { names: ['report'], load: async () => (await import('./commands/report.js')).registerReportCommand },
  {
    names: ['admission', 'admit'],
    load: async () => (await import('./commands/admission.js')).registerAdmissionCommands,
  },
  {
    names: ['conformance'],
    load: async () => (await import('./commands/conformance.js')).registerConformanceCommands,
  },
];

/**
 * The program for one call: only the module of the command argv names (none for --version). Anything else (no
 * command, --help, `help`, an unknown command or option) gets every command, so listings and "unknown command"
 * suggestions are the same as before.
 */
export async function programFor(argv: readonly string[]): Promise<Command> {
  const first = argv[2];
  if (first === '--version' || first === '-V') return finish(newProgram());
  const entry = COMMAND_MODULES.find((m) => first !== undefined && m.names.includes(first));
  if (!entry) return (await import('./program.js')).buildProgram();
  const program = newProgram();
  (await entry.load())(program);
  return finish(program);
}

function finish(program: Command): Command {
  // `verify` turns this on when it registers; every call keeps it on so option parsing does not depend on the call.
  program.enablePositionalOptions();
  applyCliContract(program);
  return program;
}
