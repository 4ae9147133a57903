/**
 * Start-up: bin.ts builds the program for one call from program-lazy.ts, loading only the invoked command's module.
 * These tests hold that program to the full one (buildProgram(), which the contract test walks): the same top-level
 * commands in the same order, and byte-identical help for every command path; and they check that the calls users
 * make most (`--version`, `verify`, `admit workspace`) no longer load the heavy dependencies of other commands.
 */
import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, COMMAND_MODULES, programFor, VERSION } from '@airlock/cli';
import { CLI, REPO_ROOT } from './helpers/cli.js';

const argv = (...args: string[]): string[] => ['node', 'airlock', ...args];

function helpText(cmd: Command): string {
  let out = '';
  cmd.configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
  cmd.outputHelp();
  return out;
}

function commandPaths(cmd: Command, path: string[] = []): string[][] {
  return cmd.commands.flatMap((c) => [[...path, c.name()], ...commandPaths(c, [...path, c.name()])]);
}

function find(root: Command, path: string[]): Command {
  let cmd = root;
  for (const name of path) {
    const next = cmd.commands.find((c) => c.name() === name);
    if (!next) throw new Error(`no command '${path.join(' ')}'`);
    cmd = next;
  }
  return cmd;
}

describe('the per-call program (program-lazy.ts)', () => {
  it('its module table names exactly the top-level commands of buildProgram(), in help order', () => {
    const full = buildProgram()
      .commands.map((c) => c.name())
      .filter((n) => n !== 'help');
    expect(COMMAND_MODULES.flatMap((m) => m.names)).toEqual(full);
  });

  it('each module registers exactly the commands the table gives it', async () => {
    for (const entry of COMMAND_MODULES) {
      const program = await programFor(argv(entry.names[0]!));
      expect(program.commands.map((c) => c.name())).toEqual(entry.names);
    }
  });

  it('prints byte-identical help for every command path and for the program itself', async () => {
    const full = buildProgram();
    const paths = commandPaths(full);
    expect(paths.length).toBeGreaterThan(20);
    for (const path of paths) {
      const lazy = await programFor(argv(...path));
      expect(helpText(find(lazy, path)), path.join(' ')).toBe(helpText(find(full, path)));
    }
    expect(helpText(await programFor(argv('--help')))).toBe(helpText(buildProgram()));
  });

  it('loads no command for --version, and every command when argv names none or an unknown one', async () => {
    expect((await programFor(argv('--version'))).commands).toEqual([]);
    expect((await programFor(argv('-V'))).commands).toEqual([]);
    const all = buildProgram().commands.length;
    for (const args of [[], ['--help'], ['help', 'verify'], ['no-such-command'], ['--json']])
      expect((await programFor(argv(...args))).commands.length, args.join(' ')).toBe(all);
  });
});

/** Runs the built CLI with a loader hook that prints every package a module of the CLI's own tree resolves. */
function packagesLoaded(args: string[]): { code: number | null; stdout: string; packages: Set<string> } {
  const hook = `export async function resolve(s, c, n) { const r = await n(s, c);
    if (r.url.includes('/node_modules/')) process.stderr.write('LOADED ' + r.url + '\\n'); return r; }`;
  const register = `import { register } from 'node:module'; register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));`;
  const r = spawnSync(
    process.execPath,
    ['--import', `data:text/javascript,${encodeURIComponent(register)}`, CLI, ...args],
    { cwd: REPO_ROOT, encoding: 'utf8' },
  );
  const packages = new Set<string>();
  for (const m of r.stderr.matchAll(/^LOADED .*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//gm)) packages.add(m[1]!);
  return { code: r.status, stdout: r.stdout, packages };
}

// Each of these cost 50–200 modules at every start-up before; none is needed to print a version or check a bundle.
const HEAVY = ['@aws-sdk/client-s3', 'pg', '@cyclonedx/cyclonedx-library', 'ajv', 'yaml', '@sigstore/sign', 'jose'];

describe('what a call loads (the built CLI)', () => {
  it('--version prints the version and loads none of the commands’ dependencies', () => {
    const r = packagesLoaded(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${VERSION}\n`);
    expect([...r.packages].filter((p) => p !== 'commander')).toEqual([]);
  });

  it('verify loads the verifier but not the signer, S3, PostgreSQL, SBOM, schema or YAML libraries', () => {
    const r = packagesLoaded(['verify', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: airlock verify');
    expect(r.packages.has('@sigstore/verify')).toBe(true);
    expect(HEAVY.filter((p) => r.packages.has(p))).toEqual([]);
  });

  it('admit workspace --help loads neither S3, PostgreSQL, the SBOM library nor the signer', () => {
    const r = packagesLoaded(['admit', 'workspace', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: airlock admit workspace');
    expect(
      ['@aws-sdk/client-s3', 'pg', '@cyclonedx/cyclonedx-library', '@sigstore/sign'].filter((p) => r.packages.has(p)),
    ).toEqual([]);
  });

  // Registering these commands loaded the runner, SBOM library, signer, CA and admission controller before round 2.
  // `up`, `tlog …` and `identity …` loaded jose, @noble/curves, better-sqlite3, pg's storage and S3 until round 3.
  it.each(['run', 'sync', 'demo', 'admission serve', 'mirror serve', 'up', 'tlog serve', 'tlog monitor', 'identity'])(
    '%s --help loads none of the heavy libraries (they load in the action)',
    (command) => {
      const r = packagesLoaded([...command.split(' '), '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: airlock ${command}`);
      expect([...HEAVY, '@peculiar/x509'].filter((p) => r.packages.has(p))).toEqual([]);
    },
  );
});
