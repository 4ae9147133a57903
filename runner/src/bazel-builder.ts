import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { BuildContext, BuildPlan, Builder } from './build-plan.js';
import { DRIVER_COMMON } from './driver-common.js';
import { RunnerError } from './errors.js';
import { NESTED_SANDBOX_PROFILE, SANDBOX_NODE_PATH } from './sandbox.js';

/**
 * The Bazel builder (`builder: {type: bazel, targets: [...]}`), for Debian's bazel-bootstrap 4.2.3 (install base
 * pre-extracted in /usr/share/bazel, rules_java in /usr/share/bazel/rules/java).
 *
 * Dependencies come only from the mirror, by digest. How (and why this way):
 * - Before building, the driver lists every pinned repository offline (`bazel query --keep_going
 *   --output=build //external:*`, which evaluates the WORKSPACE without fetching), fetches each pinned sha256
 *   from `<mirror>/sha256/<hex>`, checks the digest itself and places the blob in a fresh repository cache
 *   (`content_addressable/sha256/<hex>/file`). The query is repeated while it reveals new pins (repositories
 *   declared by macros of fetched repositories).
 * - The build then runs with that `--repository_cache` and `--experimental_repository_disable_download`:
 *   Bazel looks repositories up in the cache by the rule's sha256 and can download nothing else. A downloader
 *   config rewrites every URL to an IP-literal loopback URL: Bazel 4.2.3 resolves the hosts of a rule's URLs
 *   even for a cache hit (java.net.URL hashing), and a DNS lookup is a hermeticity violation. ("block *"
 *   instead drops the URLs, and Bazel then probes http://nonexistent.example.org/cacheprobe — another lookup —
 *   and cannot tell the archive type from the URL suffix.)
 * Chosen over a downloader config that rewrites URLs to the mirror because the rewriter only sees URLs, not
 * sha256s (it needs a rule per URL and the file name for the archive type), because a cache miss is a clean
 * "download is disabled" build failure instead of a network attempt, and because the digest check happens
 * before Bazel sees a byte. A blob whose digest differs is refused and the build does not start.
 *
 * Sandbox: Bazel runs its actions with `--spawn_strategy=linux-sandbox` (pinned, so a missing nested sandbox is
 * an error, not a silent fallback) inside bwrap's NESTED_SANDBOX_PROFILE. The server belongs to the sandbox's
 * network and pid namespaces: the driver runs `bazel shutdown` at the end and the pid namespace kills anything
 * left. The rebuild's faketime is moved from Bazel itself (the JVM hangs under libfaketime) to the actions,
 * where timestamps could enter outputs. Outputs: the default outputs of the requested targets, from Bazel's
 * build event protocol, copied (symlinks followed) to $AIRLOCK_OUTPUT_DIR at their path under bazel-bin
 * (sources and external files at their execroot path, e.g. external/<repo>/…).
 */

export const BAZEL_INSTALL_BASE = '/usr/share/bazel';
export const BAZEL_RULES_JAVA = '/usr/share/bazel/rules/java';
const BAZEL_DIRS = ['/usr/local/bin', '/usr/bin', '/bin'];
/** Scratch space of the driver inside the sandbox: the same path in the build and the rebuild. */
export const BAZEL_WORK_DIR = '/tmp/airlock-bazel';

/** Why this host cannot run the Bazel builder, or undefined. */
export function bazelBuilderProblem(): string | undefined {
  if (!findBazel()) return `bazel is not installed in ${BAZEL_DIRS.join(', ')} (Debian: bazel-bootstrap)`;
  if (!existsSync(join(BAZEL_INSTALL_BASE, 'A-server.jar')))
    return `bazel is not Debian's bazel-bootstrap: no pre-extracted install base in ${BAZEL_INSTALL_BASE}`;
  if (!existsSync(join(BAZEL_RULES_JAVA, 'java')))
    return `rules_java is not installed in ${BAZEL_RULES_JAVA} (Debian: bazel-rules-java)`;
  return undefined;
}

function findBazel(): string | undefined {
  for (const d of BAZEL_DIRS) {
    try {
      if (statSync(join(d, 'bazel')).isFile()) return join(d, 'bazel');
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The JVM and C compiler Bazel finds on the sandbox PATH, by the path the trace shows them executed at. */
function jvmAndCompiler(): string[] {
  const out: string[] = [];
  for (const tool of ['java', 'gcc']) {
    for (const d of BAZEL_DIRS) {
      const p = join(d, tool);
      if (!existsSync(p)) continue;
      // Bazel's client execs the JDK's own binary (alternatives resolved); local_config_cc calls /usr/bin/gcc.
      out.push(tool === 'java' ? realpathSync(p) : p);
      break;
    }
  }
  return out;
}

/** /etc entries the JDK's conf symlinks point into (Debian: /etc/java-17-openjdk), bound read-only. */
function javaEtcDirs(): string[] {
  try {
    return readdirSync('/etc')
      .filter((n) => /^java(-\d+-openjdk)?$/.test(n))
      .map((n) => `/etc/${n}`)
      .sort();
  } catch {
    return [];
  }
}

/** A minimal rules_cc for Bazel 4.2.3 (Debian's bazel-rules-cc 0.0.4 is too new for it): re-exports the native rules. */
export const RULES_CC_STUB: Record<string, string> = {
  WORKSPACE: '',
  BUILD: '',
  'cc/BUILD':
    'alias(name = "toolchain_type", actual = "@bazel_tools//tools/cpp:toolchain_type", visibility = ["//visibility:public"])\n',
  'cc/defs.bzl': [
    'cc_binary',
    'cc_library',
    'cc_test',
    'cc_import',
    'cc_proto_library',
    'cc_toolchain',
    'cc_toolchain_suite',
    'fdo_profile',
    'fdo_prefetch_hints',
    'objc_library',
    'objc_import',
  ]
    .map((r) => `def ${r}(**kw):\n    native.${r}(**kw)\n`)
    .join('\n'),
};

export interface BazelDriverConfig {
  targets: string[];
  bazel: string;
  installBase: string;
  rulesJava: string;
  hostJavabase: string;
  workDir: string;
  sourceDir: string;
  outputDir: string;
  mirrorUrl?: string;
  rulesCcStub: Record<string, string>;
}

export const BAZEL_DRIVER_SCRIPT = `// airlock Bazel driver (generated by @airlock/runner)
const DRIVER_NAME = 'bazel';
${DRIVER_COMMON}
${String.raw`
const cfg = JSON.parse(readFileSync('/airlock/bazel-driver.json', 'utf8'));
const cache = join(cfg.workDir, 'repository-cache');
const stub = join(cfg.workDir, 'rules_cc');
const events = join(cfg.workDir, 'build-events.json');
const downloader = join(cfg.workDir, 'downloader.cfg');
mkdirSync(join(cache, 'content_addressable', 'sha256'), { recursive: true });
for (const [name, text] of Object.entries(cfg.rulesCcStub)) {
  mkdirSync(dirname(join(stub, name)), { recursive: true });
  writeFileSync(join(stub, name), text);
}
// Every URL becomes an IP-literal loopback URL that keeps the file name (Bazel infers the archive type from it):
// even for a cache hit Bazel 4.2.3 puts the rule's URLs into java.net.URL hash sets, which resolves their hosts
// (a DNS lookup of e.g. github.com). Nothing is fetched from there: downloads are disabled.
writeFileSync(downloader, 'rewrite (.*) http://127.0.0.1/airlock-downloads-disabled/$1\n');

// faketime (the rebuild's clock shift) hangs the JVM: Bazel itself runs on the real clock, its actions get the shift.
const env = { ...process.env };
const actionEnv = [];
for (const k of Object.keys(env)) {
  if (k === 'LD_PRELOAD' || k === 'FAKETIME' || k.startsWith('FAKETIME_') || k === 'DONT_FAKE_MONOTONIC') {
    actionEnv.push('--action_env=' + k + '=' + env[k]);
    delete env[k];
  }
}

const startup = [cfg.bazel, '--ignore_all_rc_files', '--install_base=' + cfg.installBase, '--trust_install_base', '--output_user_root=' + join(cfg.workDir, 'output'), '--host_jvm_args=-XX:-UsePerfData'];
const ui = ['--curses=no', '--color=no'];
const repo = ['--override_repository=rules_cc=' + stub, '--override_repository=rules_java=' + cfg.rulesJava, '--repository_cache=' + cache, '--experimental_repository_disable_download', '--experimental_downloader_config=' + downloader];

/** Pins in 'bazel query --output=build' text: every "<attr>sha256 = <hex>" and "integrity = sha256-<b64>" of every rule. */
function parsePins(text) {
  const pins = [];
  for (const block of text.split(/\n(?=# )/)) {
    const name = /^\s+name = "([^"]+)"/m.exec(block);
    if (!name) continue;
    const urls = [];
    for (const m of block.matchAll(/^\s+urls? = (\[[^\]]*\]|"[^"]*")/gm)) for (const u of m[1].matchAll(/"([^"]+)"/g)) urls.push(u[1]);
    const shas = new Set();
    for (const m of block.matchAll(/^\s+\w*sha256 = "([0-9a-fA-F]{64})"/gm)) shas.add(m[1].toLowerCase());
    for (const m of block.matchAll(/^\s+integrity = "sha256-([A-Za-z0-9+/=]+)"/gm)) {
      const hex = Buffer.from(m[1], 'base64').toString('hex');
      if (hex.length === 64) shas.add(hex);
    }
    for (const sha256 of shas) pins.push({ name: name[1], sha256, urls });
  }
  return pins;
}

const pins = new Map(); // sha256 -> { sha256, names, urls }
const outcome = new Map(); // sha256 -> 'ok' | 'missing' | { mismatch }
let exitCode = 0;
try {
  say('listing pinned repositories offline (bazel query //external:*)');
  for (let round = 0; round < 10; round++) {
    const q = await run([...startup, 'query', ...ui, ...repo, '--keep_going', '--output=build', '//external:*'], { env, capture: true, quiet: true });
    let added = 0;
    for (const p of parsePins(q.stdout)) {
      const known = pins.get(p.sha256);
      if (known) { if (!known.names.includes(p.name)) known.names.push(p.name); continue; }
      pins.set(p.sha256, { sha256: p.sha256, names: [p.name], urls: p.urls });
      if (!cfg.mirrorUrl) { outcome.set(p.sha256, 'missing'); continue; }
      const dir = join(cache, 'content_addressable', 'sha256', p.sha256);
      const tmp = join(cache, 'incoming-' + p.sha256);
      const r = await fetchBlob(cfg.mirrorUrl, p.sha256, tmp);
      if (r.result === 'ok') {
        mkdirSync(dir, { recursive: true });
        renameSync(tmp, join(dir, 'file'));
        outcome.set(p.sha256, 'ok');
        added++;
      } else outcome.set(p.sha256, r.result === 'missing' ? 'missing' : { mismatch: r });
    }
    // A complete query (exit 0) listed everything; a partial one (exit 3: a load() needs a repository not
    // fetched yet) may show more pins once the new blobs are in the cache.
    if (added === 0 || q.code === 0) break;
  }
  const label = (p) => p.names.map((n) => '@' + n).join(', ');
  const fetched = [...pins.values()].filter((p) => outcome.get(p.sha256) === 'ok');
  const missing = [...pins.values()].filter((p) => outcome.get(p.sha256) === 'missing');
  const refused = [...pins.values()].filter((p) => typeof outcome.get(p.sha256) === 'object');
  if (fetched.length > 0) say(fetched.length + ' pinned archive(s) from the mirror, sha256 verified: ' + fetched.map((p) => label(p) + ' sha256:' + p.sha256).join('; '));
  if (missing.length > 0) say(missing.length + ' pinned archive(s) ' + (cfg.mirrorUrl ? 'not in the mirror' : '(this build has no mirror)') + ', needed only if the build uses them: ' + missing.map(label).join(', '));
  if (refused.length > 0) {
    for (const p of refused) {
      const m = outcome.get(p.sha256).mismatch;
      say('REFUSED ' + label(p) + ': the mirror served ' + m.size + ' bytes with sha256 ' + m.got + ' for ' + m.url + ', but the WORKSPACE pins sha256 ' + p.sha256 + ' (hash mismatch: a tampered or corrupt mirror blob)');
    }
    say('not building: the mirror returned ' + refused.length + ' blob(s) whose digest does not match the pin');
    exitCode = 1;
  } else {
    say('bazel build ' + cfg.targets.join(' ') + ' (linux-sandbox, downloads disabled)');
    const b = await run([...startup, 'build', ...ui, ...repo, '--host_javabase=' + cfg.hostJavabase, '--spawn_strategy=linux-sandbox', '--incompatible_strict_action_env', '--symlink_prefix=/', '--build_event_json_file=' + events, '--show_progress_rate_limit=5', ...actionEnv, '--', ...cfg.targets], { env });
    exitCode = b.code;
    if (b.code !== 0) {
      for (const m of new Set([...b.stderrTail.matchAll(/Failed to download repo ([^:\s]+): download is disabled/g)].map((x) => x[1]))) {
        const pin = [...pins.values()].find((p) => p.names.includes(m));
        if (pin) say('@' + m + ' (sha256:' + pin.sha256 + (pin.urls[0] ? ', ' + pin.urls[0] : '') + ') is not in the mirror' + (cfg.mirrorUrl ? ' (' + cfg.mirrorUrl.replace(/\/+$/, '') + '/sha256/' + pin.sha256 + ' answered 404)' : ' (this build has no mirror)') + ': nothing was downloaded, downloads are disabled; add the archive to the mirror');
        else say('@' + m + ' has no sha256 pin the runner could find: only sha256-pinned archives from the mirror are available (downloads are disabled)');
      }
      if (/'linux-sandbox' was requested/.test(b.stderrTail)) say('Bazel found no usable linux-sandbox in this sandbox (it needs user namespaces and a mountable /proc)');
    } else {
      exitCode = copyOutputs();
    }
  }
} catch (e) {
  say('error: ' + (e && e.message ? e.message : String(e)));
  exitCode = 1;
} finally {
  await run([...startup, 'shutdown'], { env, quiet: true });
}
process.exit(exitCode);

/** The default outputs of the requested targets, from the build event protocol file. */
function copyOutputs() {
  const sets = new Map();
  const wanted = [];
  for (const line of readFileSync(events, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    const ev = JSON.parse(line);
    if (ev.id && ev.id.namedSet && ev.namedSetOfFiles) sets.set(ev.id.namedSet.id, ev.namedSetOfFiles);
    if (ev.id && ev.id.targetCompleted && ev.completed && ev.completed.success) {
      for (const g of ev.completed.outputGroup || []) if (g.name === 'default') for (const fs of g.fileSets || []) wanted.push(fs.id);
    }
  }
  const files = new Map();
  const seen = new Set();
  const visit = (id) => {
    if (seen.has(id)) return;
    seen.add(id);
    const s = sets.get(id);
    if (!s) return;
    for (const f of s.files || []) {
      const rel = relativeName(f);
      if (rel) files.set(rel, decodeURIComponent(f.uri.replace(/^file:\/\//, '')));
      else say('skipping output ' + f.name + ' (' + f.uri + '): no place under bazel-bin');
    }
    for (const c of s.fileSets || []) visit(c.id);
  };
  for (const id of wanted) visit(id);
  for (const [rel, src] of [...files].sort()) copyOut(src, join(cfg.outputDir, rel));
  say('copied ' + files.size + ' output(s) to ' + cfg.outputDir + ': ' + [...files.keys()].sort().join(', '));
  return 0;
}

/** bazel-bin-relative name of a built file; execroot-relative for source and external files. */
function relativeName(f) {
  if (typeof f.uri !== 'string' || !f.uri.startsWith('file://')) return undefined;
  const path = decodeURIComponent(f.uri.slice('file://'.length));
  if (Array.isArray(f.pathPrefix) && f.pathPrefix.length > 0) return safeRelative(f.name) ? f.name : undefined;
  const ext = /\/(external\/.+)$/.exec(path);
  if (ext && safeRelative(ext[1])) return ext[1];
  const src = /\/execroot\/[^/]+\/(.+)$/.exec(path);
  if (src && safeRelative(src[1])) return src[1];
  return undefined;
}
`}`;

export class BazelBuilder implements Builder {
  readonly type = 'bazel' as const;
  readonly supportsFaketime = true;
  private readonly bazel: string;

  constructor(private readonly targets: readonly string[]) {
    const problem = bazelBuilderProblem();
    if (problem) throw new RunnerError('RUNNER_TOOL_MISSING', `the bazel builder cannot run on this host: ${problem}`);
    this.bazel = findBazel()!;
  }

  plan(ctx: BuildContext): BuildPlan {
    const config: BazelDriverConfig = {
      targets: [...this.targets],
      bazel: this.bazel,
      installBase: BAZEL_INSTALL_BASE,
      rulesJava: BAZEL_RULES_JAVA,
      hostJavabase: '@local_jdk//:jdk',
      workDir: BAZEL_WORK_DIR,
      sourceDir: ctx.sourceDir,
      outputDir: ctx.outputDir,
      ...(ctx.mirrorUrl ? { mirrorUrl: ctx.mirrorUrl } : {}),
      rulesCcStub: RULES_CC_STUB,
    };
    const bazel4 = join(this.bazel, '..', 'bazel-4');
    return {
      argv: [SANDBOX_NODE_PATH, '/airlock/bazel-driver.mjs'],
      cwd: ctx.sourceDir,
      profile: { ...NESTED_SANDBOX_PROFILE, extraReadOnly: javaEtcDirs() },
      files: { 'bazel-driver.mjs': BAZEL_DRIVER_SCRIPT, 'bazel-driver.json': JSON.stringify(config) },
      needsNode: true,
      // The client script and binary, the server jar and the sandbox helpers, the JVM and gcc: the jar is never
      // exec'd, and without strace (log monitor) nothing is traced at all.
      toolchainFiles: [
        this.bazel,
        ...(existsSync(bazel4) ? [bazel4] : []),
        ...['A-server.jar', 'linux-sandbox', 'process-wrapper', 'build-runfiles']
          .map((f) => join(BAZEL_INSTALL_BASE, f))
          .filter((p) => existsSync(p)),
        ...jvmAndCompiler(),
      ],
      describe: `bazel build ${this.targets.join(' ')}`,
    };
  }
}
