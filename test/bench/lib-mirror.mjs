// Shared plumbing of the mirror benchmarks (test/bench/mirror-*.bench.mjs): a scope that owns every temp dir,
// child process and in-process server a bench starts and tears them all down on success, failure or a signal;
// the built packages; loopback servers; generated npm packages (tarballs written with tar-stream + gzip in npm's
// `package/…` layout, with a dependency graph and scoped names); the trust plane + signer; child-process helpers.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { which } from './lib.mjs';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(REPO_ROOT, 'packages', 'cli', 'dist', 'bin.js');

/** Imports a built workspace (`packages/cas`, `mirror-sync`, …) from its dist/, or exits with a build hint. */
export async function importBuilt(workspace) {
  const file = join(REPO_ROOT, workspace, 'dist', 'index.js');
  if (!existsSync(file)) {
    console.error(`mirror bench: ${file} is missing; build first (npx tsc -b, or npm run bench)`);
    process.exit(1);
  }
  return import(pathToFileURL(file).href);
}

export function requireCli() {
  if (!existsSync(CLI)) {
    console.error(`mirror bench: ${CLI} is missing; build first (npx tsc -b, or npm run bench)`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scope: everything a bench starts, torn down in reverse order whatever happens.
// ---------------------------------------------------------------------------------------------------------------

/**
 * One per bench script. `root` is a fresh temp dir. Children started with `scope.spawn` are SIGTERMed (then
 * SIGKILLed) by `cleanup()`; `scope.defer(fn)` registers async closers (in-process servers, the trust plane). On
 * process exit / SIGINT / SIGTERM the synchronous part (kill children, remove dirs) still runs.
 */
export function createScope(name) {
  const root = mkdtempSync(join(tmpdir(), `airlock-bench-${name}-`));
  const dirs = [root];
  const children = new Set();
  const closers = [];
  let done = false;

  const killAllSync = () => {
    for (const c of children) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    children.clear();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      console.error(`mirror bench: ${sig}, cleaning up`);
      killAllSync();
      process.exit(130);
    });
  }

  const scope = {
    root,
    /** A subdirectory of root (created). */
    dir(...parts) {
      const d = join(root, ...parts);
      mkdirSync(d, { recursive: true });
      return d;
    },
    /** Another temp dir outside root (e.g. for a tool install), removed with the scope. */
    tempDir(prefix) {
      const d = mkdtempSync(join(tmpdir(), `airlock-bench-${prefix}-`));
      dirs.push(d);
      return d;
    },
    defer(fn) {
      closers.push(fn);
    },
    /** spawn() whose child is tracked and stopped by cleanup(). */
    spawn(cmd, args, options = {}) {
      const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
      children.add(child);
      child.on('exit', () => children.delete(child));
      child.on('error', () => children.delete(child));
      return child;
    },
    async stop(child, graceMs = 5000) {
      await stopChild(child, graceMs);
      children.delete(child);
    },
    async cleanup() {
      if (done) return;
      done = true;
      for (const fn of closers.reverse()) {
        try {
          await fn();
        } catch (err) {
          console.error(`mirror bench: cleanup step failed: ${err?.message ?? err}`);
        }
      }
      await Promise.all([...children].map((c) => stopChild(c, 5000)));
      killAllSync();
    },
  };
  return scope;
}

/** Runs the bench body; on any error prints it and exits 1 — after cleanup either way. */
export async function runBench(scope, body) {
  let code = 0;
  try {
    await body();
  } catch (err) {
    console.error(err?.stack ?? String(err));
    code = 1;
  } finally {
    await scope.cleanup();
  }
  // Lingering keep-alive sockets or timers must not keep a finished bench alive.
  process.exit(code);
}

export function stopChild(child, graceMs = 5000) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone
      }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    try {
      child.kill('SIGTERM');
    } catch {
      clearTimeout(t);
      resolve();
    }
  });
}

/** Runs a command to completion (asynchronously: in-process servers keep serving meanwhile). */
export function run(cmd, args, options = {}) {
  const { scope, input, timeoutMs = 300_000, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = (scope ? scope.spawn.bind(scope) : spawn)(cmd, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...spawnOptions,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0 });
    });
    child.stdin.end(input ?? '');
  });
}

/** Like run() but throws with the output when the exit code is not 0. */
export async function runOk(cmd, args, options = {}) {
  const r = await run(cmd, args, options);
  if (r.code !== 0)
    throw new Error(
      `'${cmd} ${args.join(' ')}' failed (exit ${r.code ?? r.signal})\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`,
    );
  return r;
}

/** Starts `node packages/cli/dist/bin.js <args>` and waits for its JSON output on stdout (e.g. mirror serve → {url}). */
export function startCliJson(scope, args, timeoutMs = 60_000) {
  return startJsonChild(scope, process.execPath, [CLI, ...args], timeoutMs);
}

/** Starts a long-running child and waits until what it printed on stdout is one complete JSON object. */
export async function startJsonChild(scope, cmd, args, timeoutMs = 60_000) {
  const what = `${cmd === process.execPath ? 'node' : cmd} ${args.join(' ')}`;
  const child = scope.spawn(cmd, args, { cwd: REPO_ROOT });
  let out = '';
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => {
    if (err.length < 20_000) err += d;
  });
  const json = await new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${what}: not ready after ${timeoutMs} ms\n${out}\n${err}`)),
      timeoutMs,
    );
    child.stdout.setEncoding('utf8').on('data', (d) => {
      out += d;
      // `--json` output may be pretty-printed over several lines: done once the whole of it parses.
      const text = out.trim();
      if (text.startsWith('{') && text.endsWith('}')) {
        try {
          const parsed = JSON.parse(text);
          clearTimeout(timer);
          resolve(parsed);
        } catch {
          // not complete yet
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited early (${code})\n${out}\n${err}`));
    });
  });
  return { child, json, stderr: () => err };
}

// ---------------------------------------------------------------------------------------------------------------
// Network helpers
// ---------------------------------------------------------------------------------------------------------------

/** A free TCP port on 127.0.0.1 (for servers that cannot bind port 0 and report it: nginx, Verdaccio). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `url` until it answers `ok(status)` (default 2xx), or throws after `timeoutMs`. */
export async function waitForHttp(url, { timeoutMs = 30_000, ok = (s) => s >= 200 && s < 300, child } = {}) {
  const deadline = performance.now() + timeoutMs;
  let last = '';
  while (performance.now() < deadline) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`${url}: the server exited (${child.exitCode ?? child.signalCode})`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (ok(res.status)) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = err?.cause?.code ?? err?.message ?? String(err);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (${last})`);
}

/**
 * In-process loopback "upstream": exact-path routes (query ignored, path percent-decoded) to in-memory bodies or
 * files. Used as the outside world the sync job fetches from.
 */
export async function startUpstream() {
  const routes = new Map();
  let hits = 0;
  const server = createServer((req, res) => {
    hits++;
    let path;
    try {
      path = decodeURIComponent((req.url ?? '/').split('?')[0]);
    } catch {
      path = '';
    }
    const r = routes.get(path);
    if (!r) {
      res.writeHead(404).end('not found');
      return;
    }
    if (r.file) {
      res.writeHead(200, { 'content-type': r.type, 'content-length': String(statSync(r.file).size) });
      createReadStream(r.file, { highWaterMark: 1 << 20 }).pipe(res);
    } else {
      res.writeHead(200, { 'content-type': r.type, 'content-length': String(r.body.length) });
      res.end(r.body);
    }
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    get hits() {
      return hits;
    },
    body(path, body, type = 'application/octet-stream') {
      routes.set(path, { body: Buffer.isBuffer(body) ? body : Buffer.from(body), type });
    },
    file(path, file, type = 'application/octet-stream') {
      routes.set(path, { file, type });
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** sha256 (hex) of the body at `url`, read to the end. */
export async function fetchSha256(url, init) {
  const res = await fetch(url, init);
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const h = createHash('sha256');
  for await (const chunk of res.body) h.update(chunk);
  return h.digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// Generated npm packages
// ---------------------------------------------------------------------------------------------------------------

/** Small deterministic PRNG (mulberry32): the same package set every run. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NPM_MTIME = new Date('1985-10-26T08:15:00.000Z'); // what npm pack stamps on every entry

/**
 * A .tgz in npm's layout (`package/<path>`), gzip-compressed, from `{ path: string|Buffer }`. `level` 9 as npm
 * pack does; a lower one for incompressible payloads, where it only costs time.
 */
export async function npmTarball(files, { level = 9 } = {}) {
  const pack = tar.pack();
  const chunks = [];
  pack.on('data', (c) => chunks.push(c));
  const ended = new Promise((resolve, reject) => {
    pack.on('end', resolve);
    pack.on('error', reject);
  });
  for (const [path, content] of Object.entries(files)) {
    const body = Buffer.isBuffer(content) ? content : Buffer.from(content);
    await new Promise((resolve, reject) =>
      pack.entry({ name: `package/${path}`, mode: 0o644, mtime: NPM_MTIME, type: 'file' }, body, (err) =>
        err ? reject(err) : resolve(),
      ),
    );
  }
  pack.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks), { level });
}

export const sriSha512 = (b) => `sha512-${createHash('sha512').update(b).digest('base64')}`;
export const sha1Hex = (b) => createHash('sha1').update(b).digest('hex');
export const sha256Hex = (b) => createHash('sha256').update(b).digest('hex');

/** `/@scope/name/-/name-1.0.0.tgz` or `/name/-/name-1.0.0.tgz`: the path every npm registry uses. */
export function npmTarballPath(name, version) {
  return `/${name}/-/${name.slice(name.lastIndexOf('/') + 1)}-${version}.tgz`;
}

/** `@scope/name` → `@scope%2fname`, as npm requests packuments. */
export function npmPackumentPath(name) {
  return name.startsWith('@') ? `/@${encodeURIComponent(name.slice(1))}` : `/${encodeURIComponent(name)}`;
}

/** Filler JS source of roughly `bytes` bytes (compressible like real code, but not trivially). */
function fillerSource(rand, bytes) {
  const words = [
    'const',
    'value',
    'return',
    'function',
    'module',
    'exports',
    'options',
    'result',
    'length',
    'index',
    'buffer',
    'config',
  ];
  const lines = [];
  let n = 0;
  while (n < bytes) {
    const w = Array.from({ length: 6 }, () => words[Math.floor(rand() * words.length)]);
    const line = `  ${w[0]}_${Math.floor(rand() * 1e6)} = ${w[1]}(${w[2]}, ${Math.floor(rand() * 1e9)}, '${w[3]}${w[4]}'); // ${w[5]}`;
    lines.push(line);
    n += line.length + 1;
  }
  return `module.exports = function filler() {\n${lines.join('\n')}\n};\n`;
}

/**
 * A set of `count` package names (a third unscoped, the rest under three scopes), each at 1.0.0, `twoVersions`
 * of them also at 2.0.0, with a dependency DAG: every package after the first `roots` has a parent earlier in the
 * list plus a few random extra edges; some dependents of a two-version package ask for ^2, others ^1, so npm
 * nests copies (`node_modules/a/node_modules/b`). Returns the packages (with tarballs) and the root app's deps.
 */
export async function generateNpmPackages({
  count = 210,
  twoVersions = 15,
  roots = 12,
  seed = 42,
  minBytes = 300,
  maxBytes = 150_000,
} = {}) {
  const rand = prng(seed);
  const scopes = ['@bench-core', '@bench-util', '@bench-ui'];
  const names = Array.from({ length: count }, (_, i) => {
    const id = String(i).padStart(3, '0');
    return i % 3 === 0 ? `bench-pkg-${id}` : `${scopes[i % scopes.length]}/pkg-${id}`;
  });
  const twoVersion = new Set();
  while (twoVersion.size < Math.min(twoVersions, count - roots))
    twoVersion.add(roots + Math.floor(rand() * (count - roots)));
  // deps[i]: name → range
  const deps = names.map(() => ({}));
  for (let j = roots; j < count; j++) {
    const parent = Math.floor(rand() * j);
    deps[parent][names[j]] = '^1.0.0';
    const extra = Math.floor(rand() * 3);
    for (let e = 0; e < extra; e++) {
      const k = j + 1 + Math.floor(rand() * (count - j - 1));
      if (k < count) deps[j][names[k]] = twoVersion.has(k) && rand() < 0.5 ? '^2.0.0' : '^1.0.0';
    }
  }
  const packages = [];
  for (let i = 0; i < count; i++) {
    const versions = twoVersion.has(i) ? ['1.0.0', '2.0.0'] : ['1.0.0'];
    for (const version of versions) {
      const name = names[i];
      // log-uniform size between minBytes and maxBytes, like the long tail of real packages
      const size = Math.round(minBytes * (maxBytes / minBytes) ** rand());
      const dependencies = version === '1.0.0' ? deps[i] : {};
      const manifest = {
        name,
        version,
        description: `generated benchmark package ${name}`,
        main: 'index.js',
        license: 'MIT',
        ...(Object.keys(dependencies).length ? { dependencies } : {}),
      };
      const tarball = await npmTarball({
        'package.json': `${JSON.stringify(manifest, null, 2)}\n`,
        'index.js': `${Object.keys(dependencies)
          .map((d) => `require(${JSON.stringify(d)});`)
          .join('\n')}\nmodule.exports = ${JSON.stringify(`${name}@${version}`)};\n`,
        'lib/filler.js': fillerSource(rand, size),
        'README.md': `# ${name}\n\nGenerated for the airlock mirror benchmark.\n`,
      });
      packages.push({
        name,
        version,
        manifest,
        tarball,
        integrity: sriSha512(tarball),
        shasum: sha1Hex(tarball),
        sha256: sha256Hex(tarball),
      });
    }
  }
  const rootDeps = Object.fromEntries(names.slice(0, roots).map((n) => [n, '^1.0.0']));
  return { packages, names, rootDeps };
}

/** Full packuments (all versions of each name) as an npm registry would serve them, tarballs under `base`. */
export function packuments(packages, base, publishedAt = '2024-01-02T03:04:05.000Z') {
  const byName = new Map();
  for (const p of packages) {
    if (!byName.has(p.name)) byName.set(p.name, []);
    byName.get(p.name).push(p);
  }
  const out = new Map();
  for (const [name, list] of byName) {
    const versions = {};
    const time = { created: publishedAt, modified: publishedAt };
    for (const p of list) {
      versions[p.version] = {
        ...p.manifest,
        _id: `${name}@${p.version}`,
        dist: {
          integrity: p.integrity,
          shasum: p.shasum,
          tarball: `${base}${npmTarballPath(name, p.version)}`,
          fileCount: 4,
        },
      };
      time[p.version] = publishedAt;
    }
    const latest = list.map((p) => p.version).sort()[list.length - 1];
    out.set(name, { _id: name, name, 'dist-tags': { latest }, versions, time });
  }
  return out;
}

/** Serves packuments + tarballs on the upstream, npm-registry shaped. */
export function serveNpmPackages(up, packages) {
  for (const [name, doc] of packuments(packages, up.url)) up.body(`/${name}`, JSON.stringify(doc), 'application/json');
  for (const p of packages) up.body(npmTarballPath(p.name, p.version), p.tarball);
}

/**
 * A package-lock.json v3 for a flat set of packages without dependencies (every one at the top of node_modules),
 * `resolved` pointing at `base`. Enough for the sync job; not meant for `npm ci`.
 */
export function flatLockfile(packages, base) {
  const lock = {
    name: 'bench-app',
    version: '1.0.0',
    lockfileVersion: 3,
    requires: true,
    packages: { '': { name: 'bench-app', version: '1.0.0', dependencies: {} } },
  };
  for (const p of packages) {
    lock.packages[''].dependencies[p.name] = p.version;
    lock.packages[`node_modules/${p.name}`] = {
      version: p.version,
      resolved: `${base}${npmTarballPath(p.name, p.version)}`,
      integrity: p.integrity,
      license: 'MIT',
    };
  }
  return lock;
}

/** npm with a private HOME, userconfig, globalconfig and cache: the host's ~/.npmrc never leaks in. */
export function npmEnv(home) {
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, '.npmrc'), '');
  writeFileSync(join(home, 'npmrc-global'), '');
  return {
    PATH: process.env.PATH,
    HOME: home,
    npm_config_userconfig: join(home, '.npmrc'),
    npm_config_globalconfig: join(home, 'npmrc-global'),
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Trust plane, sync, import
// ---------------------------------------------------------------------------------------------------------------

/**
 * The trust plane in-process plus a Sigstore signer for the sync job's workload identity (as `airlock sync --data`
 * does). `policy` is what import checks: { subject, issuer }.
 *
 * `tlogMaxBodyBytes`: start the same three services as startTrustPlane (identity issuer, CA, log) but with the
 * log accepting larger request bodies. startTrustPlane keeps the log's default limit (1 MiB), and the manifest
 * statement of a sync names every blob as a subject, so a snapshot of more than a few thousand blobs cannot be
 * logged through it: the import bench uses this to measure a 10k-blob bundle at all, and says so.
 */
export async function startSigning(scope, dataDir, { tlogMaxBodyBytes } = {}) {
  const { AirlockSigner } = await importBuilt('packages/sign');
  const plane =
    tlogMaxBodyBytes === undefined
      ? await (await importBuilt('packages/plane')).startTrustPlane({ dataDir })
      : await startPlaneWithTlogLimit(dataDir, tlogMaxBodyBytes);
  scope.defer(() => plane.close());
  const subject = `spiffe://${plane.endpoints.trustDomain}/airlock/mirror-sync`;
  const signer = new AirlockSigner({
    fulcioUrl: plane.endpoints.caUrl,
    rekorUrl: plane.endpoints.tlogUrl,
    identity: () => plane.issueToken(subject),
  });
  return {
    plane,
    signer,
    dataDir,
    policy: { subject, issuer: plane.endpoints.identityIssuerUrl },
    trustedRoot: plane.trustedRoot,
  };
}

/** startTrustPlane's composition (packages/plane/src/plane.ts) with a larger log request-body limit; in-process only. */
async function startPlaneWithTlogLimit(dataDir, maxBodyBytes) {
  const { startIdentityIssuer } = await importBuilt('packages/identity');
  const { startCaServer } = await importBuilt('packages/ca');
  const { startTlogServer } = await importBuilt('packages/tlog');
  const { buildTrustedRoot } = await importBuilt('packages/plane');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const trustDomain = 'airlock.internal';
  const closers = [];
  const close = async () => {
    for (const c of closers.reverse()) await c().catch(() => undefined);
  };
  try {
    const identity = await startIdentityIssuer({ dataDir, host: '127.0.0.1', port: 0, trustDomain });
    closers.push(() => identity.close());
    const ca = await startCaServer({
      dataDir,
      host: '127.0.0.1',
      port: 0,
      // Loopback bench: the embedded issuer speaks plain http, which the CA accepts only when told so.
      issuers: [{ issuerUrl: identity.url, type: 'spiffe', trustDomain, allowInsecureHttp: true }],
    });
    closers.push(() => ca.close());
    const tlog = await startTlogServer({ dataDir, host: '127.0.0.1', port: 0, maxBodyBytes });
    closers.push(() => tlog.close());
    const trustedRoot = buildTrustedRoot({
      tlog: { baseUrl: tlog.url, publicKeyDer: tlog.publicKeyDer, validFrom: new Date(Date.now() - 60_000) },
      ca: {
        uri: ca.url,
        chainDer: ca.chainDer,
        validFrom: ca.validFrom,
        organization: ca.ca.subject.organization,
        commonName: ca.ca.subject.commonName,
      },
    });
    writeFileSync(join(dataDir, 'trusted_root.json'), `${JSON.stringify(trustedRoot, null, 2)}\n`);
    return {
      endpoints: { tlogUrl: tlog.url, caUrl: ca.url, identityIssuerUrl: identity.url, trustDomain },
      trustedRoot,
      issueToken: (sub, o = {}) => identity.issueToken({ subject: sub, ...o }),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** The `airlock mirror import` arguments for a bundle signed through `signing`. */
export function cliImportArgs(bundle, store, signing, extra = []) {
  return [
    'mirror',
    'import',
    bundle,
    '--store',
    store,
    '--create',
    '--data',
    signing.dataDir,
    '--sync-identity',
    signing.policy.subject,
    '--sync-issuer',
    signing.policy.issuer,
    '--json',
    '--quiet',
    ...extra,
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Reporting helpers
// ---------------------------------------------------------------------------------------------------------------

export function median(xs) {
  const s = [...xs].filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export const round = (x, digits = 2) => (Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : x);

/** `pid` and all its descendants (Linux /proc; [] elsewhere). */
export function processTree(pid) {
  const parents = new Map();
  let names;
  try {
    names = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return [];
  }
  for (const n of names) {
    try {
      const stat = readFileSync(`/proc/${n}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!parents.has(ppid)) parents.set(ppid, []);
      parents.get(ppid).push(Number(n));
    } catch {
      // exited meanwhile
    }
  }
  const out = [];
  const visit = (p) => {
    out.push(p);
    for (const c of parents.get(p) ?? []) visit(c);
  };
  visit(pid);
  return out;
}

const CLOCK_TICKS = 100; // USER_HZ: 100 on every Linux architecture Node runs on

/**
 * CPU time (ms, user and system) used so far by `pids` (Linux /proc/<pid>/stat; an exited pid counts 0). Sampled
 * before and after a load run, it gives the server's CPU cost per request — much steadier on a shared machine than
 * requests/s, which moves with everything else the cores run.
 */
export function cpuTimeMs(pids) {
  let user = 0;
  let system = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      user += Number(f[11]);
      system += Number(f[12]);
    } catch {
      // exited
    }
  }
  return { user: (user * 1000) / CLOCK_TICKS, system: (system * 1000) / CLOCK_TICKS };
}

/** The 1-minute load average and core count, printed with every result: the machine is shared. */
export async function machineLoad() {
  const os = await import('node:os');
  return { load1: round(os.loadavg()[0], 2), cpus: os.cpus().length };
}

// ---------------------------------------------------------------------------------------------------------------
// nginx (Debian package `nginx`) as a static file server
// ---------------------------------------------------------------------------------------------------------------

export function findNginx() {
  return which('nginx') ?? which('/usr/sbin/nginx');
}

/**
 * nginx in the foreground (`daemon off`) with a generated config under a temp prefix, serving `root` statically on
 * 127.0.0.1:<free port>, `workers` worker processes. Close to Debian's stock http block: sendfile + tcp_nopush,
 * no access log, no open_file_cache. Returns { url, child }.
 */
/**
 * nginx serving `root` as static files. With `packuments`, a directory's `index.json` answers its own path (a
 * packument pre-rendered as a file: `/name` and `/@scope%2fname`, which nginx decodes to `/@scope/name`), so npm
 * can resolve from it as from a registry.
 */
export async function startNginx(scope, root, { workers = 1, name = `nginx-w${workers}`, packuments = false } = {}) {
  const nginx = findNginx();
  if (!nginx) throw new Error('nginx is not installed');
  const prefix = scope.dir(name);
  for (const t of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(prefix, 'tmp', t), { recursive: true });
  const port = await freePort();
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      // As root the workers would drop to nobody, who cannot enter the 0700 temp dirs.
      process.getuid?.() === 0 ? 'user root;' : '',
      `worker_processes ${workers};`,
      'daemon off;',
      'master_process on;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'error.log')} warn;`,
      'events { worker_connections 4096; }',
      'http {',
      '  access_log off;',
      '  sendfile on;',
      '  tcp_nopush on;',
      '  keepalive_requests 1000000;',
      '  default_type application/octet-stream;',
      ...['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map(
        (t) => `  ${t === 'body' ? 'client_body' : t}_temp_path ${join(prefix, 'tmp', t)};`,
      ),
      '  types { application/json json; }',
      `  server { listen 127.0.0.1:${port}; root ${root}; location / { try_files $uri ${packuments ? '$uri/index.json ' : ''}=404; } }`,
      '}',
      '',
    ].join('\n'),
  );
  const child = scope.spawn(nginx, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')]);
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${url}/`, { ok: () => true, child, timeoutMs: 15_000 });
  } catch (e) {
    throw new Error(`nginx did not start: ${e.message}\n${err}`);
  }
  return { url, child };
}
