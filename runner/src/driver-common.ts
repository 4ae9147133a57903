/**
 * JavaScript shared by the Bazel and Nix builder drivers: small Node ESM programs the runner writes into the
 * sandbox's plumbing (/airlock/<builder>-driver.mjs, read-only) and runs with the sandbox's Node. They are
 * runner plumbing, not the build: they never appear in the toolchain (paths under /airlock/ are skipped), and
 * everything they fetch goes through the mirror bridge, which records it for provenance.
 *
 * Dependency-free on purpose, and written without template literals so it can live in a String.raw.
 * `DRIVER_NAME` must be defined by the script that includes this.
 */
export const DRIVER_COMMON = String.raw`
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, cpSync, createWriteStream, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { dirname, join } from 'node:path';

function say(message) {
  process.stderr.write('airlock-' + DRIVER_NAME + ': ' + message + '\n');
}

const MAX_CAPTURE = 32 * 1024 * 1024;
let current;
for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(sig, () => { if (current) current.kill(sig); process.exit(128 + 15); });

/**
 * Runs argv (no shell). stderr always goes through to the build log; stdout too unless captured quietly.
 * Resolves { code, stdout, stderrTail }.
 */
function run(argv, opts) {
  opts = opts || {};
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: opts.cwd || process.cwd(), env: opts.env || process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    current = child;
    const out = [];
    let outBytes = 0;
    let errTail = '';
    child.stdout.on('data', (c) => {
      if (opts.capture && outBytes < MAX_CAPTURE) { out.push(c); outBytes += c.length; }
      if (!opts.quiet) process.stdout.write(c);
    });
    child.stderr.on('data', (c) => {
      process.stderr.write(c);
      errTail = (errTail + c.toString('utf8')).slice(-(1 << 20));
    });
    child.on('error', (e) => { current = undefined; resolve({ code: 127, stdout: '', stderrTail: 'cannot run ' + argv[0] + ': ' + e.message }); });
    child.on('close', (code, signal) => { current = undefined; resolve({ code: code === null ? 128 + (signal === 'SIGKILL' ? 9 : 15) : code, stdout: Buffer.concat(out).toString('utf8'), stderrTail: errTail }); });
  });
}

/** GET url into file while hashing it: { status, sha256, size }; the file exists only for a 200. */
function fetchToFile(url, file) {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET' }, (res) => {
      if (res.statusCode !== 200) { res.resume(); res.on('end', () => resolve({ status: res.statusCode, sha256: '', size: 0 })); return; }
      const hash = createHash('sha256');
      const sink = createWriteStream(file, { mode: 0o644 });
      let size = 0;
      res.on('data', (c) => { hash.update(c); size += c.length; });
      res.on('error', reject);
      sink.on('error', reject);
      sink.on('finish', () => {
        if (!res.complete) { rmSync(file, { force: true }); reject(new Error('connection closed before the end of the body')); return; }
        resolve({ status: 200, sha256: hash.digest('hex'), size });
      });
      res.pipe(sink);
    });
    req.setTimeout(120000, () => req.destroy(new Error('no answer from the mirror within 120 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Fetches <mirror>/sha256/<hex> into file and checks the digest: 'ok' | 'missing' | 'mismatch' (+ got, size). */
async function fetchBlob(mirrorUrl, sha256, file) {
  const url = mirrorUrl.replace(/\/+$/, '') + '/sha256/' + sha256;
  const r = await fetchToFile(url, file);
  if (r.status === 404 || r.status === 410) return { result: 'missing', url };
  if (r.status !== 200) throw new Error('the mirror answered HTTP ' + r.status + ' for ' + url);
  if (r.sha256 !== sha256) { rmSync(file, { force: true }); return { result: 'mismatch', url, got: r.sha256, size: r.size }; }
  return { result: 'ok', url, size: r.size };
}

/** Copies src (file or tree) to dest, following symlinks, and leaves the copy owner-writable. */
function copyOut(src, dest) {
  mkdirSync(dirname(dest), { recursive: true });
  cpSync(src, dest, { recursive: true, dereference: true, errorOnExist: true, force: false });
  const stack = [dest];
  while (stack.length > 0) {
    const p = stack.pop();
    const st = lstatSync(p);
    chmodSync(p, (st.mode & 0o777) | 0o200);
    if (st.isDirectory()) for (const n of readdirSync(p)) stack.push(join(p, n));
  }
}

function safeRelative(rel) {
  return typeof rel === 'string' && rel !== '' && !rel.startsWith('/') && !rel.split('/').some((s) => s === '' || s === '.' || s === '..');
}
`;
