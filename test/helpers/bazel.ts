/**
 * Real Bazel (Debian's bazel-bootstrap 4.2.3) for the mirror acceptance test:
 * - `--batch`: no server is left behind (a Bazel server also belongs to the network namespace it started in);
 * - `--ignore_all_rc_files`, so Debian's /etc/bazel/bazelrc does not apply — which means passing its
 *   `--install_base=/usr/share/bazel --trust_install_base` ourselves (the install base is pre-extracted there);
 * - a private `--output_user_root` (the default repository cache lives in it, so it starts empty).
 * Downloader config syntax (4.2.x): https://github.com/bazelbuild/bazel/blob/4.2.1/src/main/java/com/google/devtools/build/lib/bazel/repository/downloader/UrlRewriterConfig.java
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { which } from './netns.js';

const INSTALL_BASE = '/usr/share/bazel';

export function bazelProblem(): string | undefined {
  if (!which('bazel')) return 'bazel is not installed (Debian: bazel-bootstrap)';
  if (!existsSync(join(INSTALL_BASE, 'A-server.jar')))
    return `bazel is not Debian's bazel-bootstrap (no pre-extracted install base in ${INSTALL_BASE})`;
  return undefined;
}

/** `bazel --batch … <command> <args>` with everything under `outputUserRoot`. */
export function bazelCommand(outputUserRoot: string, command: string, args: string[]): string[] {
  return [
    'bazel',
    '--batch',
    '--ignore_all_rc_files',
    `--install_base=${INSTALL_BASE}`,
    '--trust_install_base',
    `--output_user_root=${outputUserRoot}`,
    // No hsperfdata_<user> files in the system temp directory.
    '--host_jvm_args=-XX:-UsePerfData',
    command,
    ...args,
  ];
}

/** Writes the fixture workspace to `dest` with the archive's pin filled in. */
export function writeFixtureWorkspace(fixtureDir: string, dest: string, greetSha256: string): string {
  mkdirSync(dest, { recursive: true });
  const template = readFileSync(join(fixtureDir, 'WORKSPACE.in'), 'utf8');
  writeFileSync(join(dest, 'WORKSPACE'), template.replaceAll('@GREET_SHA256@', greetSha256));
  copyFileSync(join(fixtureDir, 'BUILD'), join(dest, 'BUILD'));
  return dest;
}

const javaRegexQuote = (s: string): string => s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
const javaReplacementQuote = (s: string): string => s.replace(/[\\$]/g, '\\$&');

/**
 * A downloader config sending each pinned URL to the mirror's `/sha256/<hex>/<filename>`, and nothing anywhere else.
 * - Bazel matches the regex against the URL *without its scheme*, and a replacement starting with `http://` sets
 *   the scheme (a scheme-less one would keep `https` and fail against a plain-HTTP mirror).
 * - The rewriter never sees the sha256 (no `${sha256}` substitution, bazelbuild/bazel#23502), so there is one rule
 *   per URL, generated from the pins.
 * - The file name is kept because `download_and_extract` infers the archive type from the URL's suffix.
 * - `block *` + `allow <mirror host>`: an unpinned URL fails instead of reaching anything else.
 */
export function bazelDownloaderConfig(pins: { urls: string[]; sha256: string }[], mirrorBase: string): string {
  const base = new URL(mirrorBase);
  const lines: string[] = [];
  for (const pin of pins) {
    for (const url of pin.urls) {
      const u = new URL(url);
      const filename = u.pathname.slice(u.pathname.lastIndexOf('/') + 1) || 'file';
      const withoutScheme = url.slice(u.protocol.length + 2);
      lines.push(
        `rewrite ^${javaRegexQuote(withoutScheme)}$ ${javaReplacementQuote(`${base.origin}/sha256/${pin.sha256}/${encodeURIComponent(filename)}`)}`,
      );
    }
  }
  lines.push(`allow ${base.hostname}`, 'block *', 'all_blocked_message only the airlock mirror is reachable', '');
  return lines.join('\n');
}

/**
 * Keeps the rules of `bazel query 'kind(http_archive, //external:*)' --output=build` that `workspaceFile` itself
 * instantiates. The query also lists Bazel's built-in defaults (DEFAULT.WORKSPACE.SUFFIX: rules_java, remotejdk…,
 * pinned to public URLs) that this workspace never fetches and an offline test cannot sync. Each rule is
 * printed as a `# <file>:<line>:<col>` location line, the call, and `# Rule … instantiated at` comments, with a
 * blank line between rules.
 */
export function rulesFromWorkspace(queryOutput: string, workspaceFile: string): string {
  const blocks = queryOutput.split(/\n\s*\n/);
  return blocks.filter((b) => b.split('\n')[0]?.startsWith(`# ${workspaceFile}:`)).join('\n\n') + '\n';
}
