import { Command, type CommanderError } from 'commander';
import { EXAMPLES } from './examples.js';
import { errorJson, EXIT, setCommandOutput } from './output.js';

// Light on purpose: bin.ts loads this for every call, before it knows which command's implementation it needs.
export const VERSION = '0.1.0';

/** The program without its commands: name, version, description, the shared help text. */
export function newProgram(): Command {
  return new Command('airlock')
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
        'Progress goes to stderr (--quiet silences it); --json prints one JSON object on stdout: the result, or',
        '{"ok": false, "error": {"code", "message"}} for any failure.',
        'Exit codes: 0 ok, 1 a check failed, 2 usage or input error, 3 a service is unavailable; `run` adds 10-16',
        '(see `airlock run --help`).',
      ].join('\n'),
    )
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortSubcommands: false });
}

/**
 * The contract every subcommand shares, applied after registration so no command can miss it (commander copies
 * settings such as exitOverride to a subcommand only when it is created): usage errors exit 2 (with a JSON error
 * on stdout when --json is in argv), and every command that runs an action has --json and -q/--quiet.
 */
export function applyCliContract(program: Command): void {
  program.hook('preAction', (_program, action) => setCommandOutput(action.opts()));
  const visit = (cmd: Command, path: string[]): void => {
    cmd.exitOverride(usageExit);
    const example = EXAMPLES[path.join(' ')];
    if (example) cmd.addHelpText('after', ['', 'Example:', ...example.map((l) => `  ${l}`)].join('\n'));
    if (cmd.commands.length === 0) {
      if (!hasOption(cmd, '--json'))
        cmd.option('--json', 'machine-readable result (or error) on stdout; progress still goes to stderr');
      if (!hasOption(cmd, '--quiet')) cmd.option('-q, --quiet', 'no progress output on stderr');
    }
    for (const sub of cmd.commands) visit(sub, [...path, sub.name()]);
  };
  visit(program, []);
}

function hasOption(cmd: Command, long: string): boolean {
  return cmd.options.some((o) => o.long === long);
}

/** commander's own errors (unknown option, missing argument, excess arguments, …) → exit 2, like other CLIs. */
function usageExit(err: CommanderError): never {
  if (err.exitCode === 0) process.exit(EXIT.OK); // --help, --version
  if (wantsJson(process.argv)) process.stdout.write(errorJson('USAGE', usageMessage(err)));
  process.exit(EXIT.USAGE);
}

function usageMessage(err: CommanderError): string {
  // A group command run without a subcommand prints its help; the message is then only '(outputHelp)'.
  if (err.code === 'commander.help') return 'missing command (see --help)';
  return err.message.replace(/^error: /, '');
}

/** `--json` anywhere before a `--` (usage errors happen before the options are parsed). */
export function wantsJson(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}
