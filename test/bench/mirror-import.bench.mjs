#!/usr/bin/env node
// Import time for a 10k-blob transfer bundle: 10,000 small generated blobs listed as a generic file list, synced
// from a loopback upstream (nginx in its own processes when installed, else a Node static server in another
// process) into a bundle signed through an in-process trust plane, then `importBundle` into an empty store
// (signature + identity + manifest checks, every blob streamed, hashed, written durably in batches — temp
// files written and fsynced together; one journal fdatasync for the batch; links; one fsync per touched
// directory — and one atomic commit after every batch is durable). In this order, as long as the time budget allows:
//   #1  the bundle into an empty store (ROUNDS times in all, fresh stores, the extra rounds last), median — the
//       headline number — each round paired with (and, with BENCH_IMPORT_BASELINE, another build's import)
//   peer 2: the same blobs as plain files, fsynced 512 at a time concurrently + one directory fsync per batch
//       (the durable writes alone), with import #1's ratio to it. Every round starts after a `sync`, with another
//       between the two, and the order alternates (import first, then the peer first), so writeback left by the
//       sync or the previous run is not charged to whichever runs first; both are printed per round
//   peer: GNU tar extracts the same bundle, sha256sum hashes every blob, one `sync -f` (a floor: no checks, no
//       per-batch durability), with import #1's ratio to it
//   #1 with the blob store's fsyncs off (diagnostic, not a supported mode: the blob file and directory fsyncs go;
//       the import journal's fdatasync per batch stays): what those fsyncs cost on this disk
//   #2  the next snapshot, which shares 95% of its blobs with the first, imported on top (every blob is still
//       read and verified; only new ones are written)
// Reports seconds, blobs/s and MB/s, and the bundle sizes.
//
// Signing: the stock trust plane's log refuses request bodies over 1 MiB, and the manifest statement names every
// blob as a subject (≈ 230 bytes each), so a 10k-blob snapshot cannot be logged through it. The bench tries the
// stock plane first, reports the refusal, and signs through the same services with a 64 MiB log body limit.
//
// Env: BENCH_IMPORT_BLOBS (default 10000), BENCH_IMPORT_CHANGED (fraction new in snapshot 2, default 0.05),
//      BENCH_IMPORT_ROUNDS (default 4), BENCH_IMPORT_BUDGET_S (whole bench, default 270),
//      BENCH_IMPORT_PROFILE=<dir> (V8 CPU profile of one extra import before the rounds, this thread: kept in
//      <dir>, top printed; not counted, since profiling slows it down),
//      BENCH_IMPORT_BASELINE=<root of another checkout, built> (also import the bundle with that build's importer
//      in every round, in the alternating order: an A/B in the same conditions).
import { execFileSync } from 'node:child_process';
import { closeSync, fsync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { join, resolve } from 'node:path';
import { Session } from 'node:inspector/promises';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { emit, printTable } from './lib.mjs';
import {
  createScope,
  findNginx,
  importBuilt,
  machineLoad,
  median,
  prng,
  round,
  runBench,
  sha256Hex,
  startJsonChild,
  startNginx,
  startSigning,
} from './lib-mirror.mjs';

const BLOBS = Math.max(1, Number(process.env.BENCH_IMPORT_BLOBS ?? 10_000));
const CHANGED = Math.min(1, Math.max(0, Number(process.env.BENCH_IMPORT_CHANGED ?? 0.05)));
const ROUNDS = Math.max(1, Number(process.env.BENCH_IMPORT_ROUNDS ?? 4));
const PROFILE = process.env.BENCH_IMPORT_PROFILE ? resolve(process.env.BENCH_IMPORT_PROFILE) : undefined;
const BASELINE = process.env.BENCH_IMPORT_BASELINE
  ? await loadBaseline(resolve(process.env.BENCH_IMPORT_BASELINE))
  : undefined;
// Nothing is started that would, judged by what the same step took before, end after this (from the start).
const BUDGET_MS = Math.max(30, Number(process.env.BENCH_IMPORT_BUDGET_S ?? 270)) * 1000;
const T_START = performance.now();
const elapsed = () => performance.now() - T_START;
const fits = (ms) => elapsed() + ms < BUDGET_MS;

const { syncToBundle } = await importBuilt('mirror-sync');
const { importBundle } = await importBuilt('packages/mirror');
const { MirrorStore } = await importBuilt('packages/cas');
const scope = createScope('import');
const fsyncAsync = promisify(fsync);

/** Blob i of a generation: 256 B – 16 KiB (log-uniform), pseudo-random bytes, unique by its header. */
function makeBlob(rand, id) {
  const size = Math.round(256 * 64 ** rand());
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE((rand() * 2 ** 32) >>> 0, Math.min(i, size - 4));
  b.write(`${id}\n`, 0);
  return b;
}

/** importBundle and MirrorStore of another build (its repository root, built). */
async function loadBaseline(root) {
  const load = (ws) => import(pathToFileURL(join(root, ws, 'dist', 'index.js')).href);
  const [{ importBundle }, { MirrorStore }] = await Promise.all([load('packages/mirror'), load('packages/cas')]);
  return { root, importBundle, MirrorStore };
}

/** V8's CPU profiler on this thread (the import runs in this process). */
async function startProfile() {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return session;
}

/** Stops the profiler, keeps the .cpuprofile in `dir` and prints the top self-time functions. */
async function saveProfile(session, dir) {
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'import-1.cpuprofile');
  writeFileSync(file, JSON.stringify(profile));
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const f = byId.get(profile.samples[i]).callFrame;
    const where = f.url
      ? `${f.url.replace(/^file:\/\/.*\/(packages|node_modules|mirror-sync)\//, '$1/')}:${f.lineNumber + 1}`
      : '';
    const k = `${f.functionName || '(anonymous)'} ${where}`.trim();
    self.set(k, (self.get(k) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  console.log(`CPU profile of import #1 (this thread; wall ${Math.round(total / 1000)} ms), kept as ${file}:`);
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 25);
  for (const [k, us] of top)
    console.log(
      `  ${((us / total) * 100).toFixed(1).padStart(5)}% ${String(Math.round(us / 1000)).padStart(6)} ms  ${k}`,
    );
}

await runBench(scope, async () => {
  const load = await machineLoad();
  console.log(
    `machine: ${load.cpus} cores, load average ${load.load1} before start (shared machine: numbers move with it)`,
  );

  // ---- two snapshots of BLOBS files; snapshot 2 replaces every (1/CHANGED)-th file ----
  const rand = prng(7);
  const gen1 = Array.from({ length: BLOBS }, (_, i) => ({
    name: `file-${String(i).padStart(5, '0')}.bin`,
    bytes: makeBlob(rand, `s1-${i}`),
  }));
  const every = CHANGED > 0 ? Math.max(1, Math.round(1 / CHANGED)) : Infinity;
  const gen2 = gen1.map((f, i) =>
    i % every === 0 ? { name: `file-${String(i).padStart(5, '0')}-v2.bin`, bytes: makeBlob(rand, `s2-${i}`) } : f,
  );
  const bytes1 = gen1.reduce((n, f) => n + f.bytes.length, 0);
  const bytes2 = gen2.reduce((n, f) => n + f.bytes.length, 0);

  // The upstream runs in other processes: an in-process one would share the sync's event loop.
  const filesDir = scope.dir('upstream', 'files');
  for (const f of new Set([...gen1, ...gen2])) writeFileSync(join(filesDir, f.name), f.bytes);
  let upstream;
  if (findNginx()) {
    upstream = { name: 'nginx', url: (await startNginx(scope, join(scope.root, 'upstream'), { workers: 1 })).url };
  } else {
    const s = await startJsonChild(scope, process.execPath, [
      join(import.meta.dirname, 'lib-mirror-static.mjs'),
      join(scope.root, 'upstream'),
    ]);
    upstream = { name: 'node static server (nginx not installed)', url: s.json.url };
  }
  const listFor = (files, path) => {
    writeFileSync(
      path,
      JSON.stringify(files.map((f) => ({ url: `${upstream.url}/files/${f.name}`, sha256: sha256Hex(f.bytes) }))),
    );
    return path;
  };

  // Signed through the stock in-process trust plane first; for a snapshot whose statement is over the log's
  // 1 MiB body limit, fall back (once, loudly) to the same services with a larger limit.
  const stock = await startSigning(scope, scope.dir('plane'));
  let signing = stock;
  let stockRefusal;
  const signer = {
    async attest(statement) {
      if (signing === stock) {
        try {
          return await stock.signer.attest(statement);
        } catch (err) {
          if (!/\(413\)|exceeds the limit/.test(String(err?.message))) throw err;
          stockRefusal = String(err.message).split(': (413)')[0];
          console.log(`NOTE: the stock trust plane refused to sign this snapshot: ${stockRefusal}`);
          console.log(
            '      (statement subjects = manifest + every blob). Signing through the same services with a 64 MiB log body limit instead.',
          );
          signing = await startSigning(scope, scope.dir('plane-large'), { tlogMaxBodyBytes: 64 << 20 });
        }
      }
      return signing.signer.attest(statement);
    },
  };
  const state = join(scope.root, 'sync-state.json');
  const sync = async (files, n) => {
    const r = await syncToBundle({
      inputs: [{ path: listFor(files, join(scope.root, `list-${n}.json`)), kind: 'generic' }],
      out: join(scope.root, `bundle-${n}.tar`),
      state,
      signer,
      // Setup, not the measurement: more parallel fetches than the default 8 / 4 per host.
      concurrency: 16,
      perHostConcurrency: 16,
      quiet: true,
      progress: 'none',
    });
    console.log(
      `sync snapshot ${n}: ${r.blobs} blobs, ${(r.blobBytes / 1e6).toFixed(1)} MB in ${(r.durationMs / 1000).toFixed(1)} s ` +
        `(${Math.round(r.blobs / (r.durationMs / 1000))} blobs/s, upstream ${upstream.name}); bundle ${(r.bytes / 1e6).toFixed(1)} MB`,
    );
    return r;
  };

  // CPU of this process (all threads) and of children it waited for, in ms: the figure that survives a loaded host.
  const cpuNow = () => {
    const u = process.cpuUsage();
    const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (u.user + u.system) / 1000 + (Number(f[13]) + Number(f[14])) * 10; // cutime + cstime, 100 Hz ticks
  };
  const importInto = async (storeDir, bundle, fsync = true, profileDir = undefined) => {
    mkdirSync(storeDir, { recursive: true });
    const syncs = { file: 0, dir: 0 };
    const store = await MirrorStore.open(storeDir, { fs: { fsync, onSync: (kind) => syncs[kind]++ } });
    const profiler = profileDir ? await startProfile() : undefined;
    try {
      const t0 = performance.now();
      const c0 = cpuNow();
      const r = await importBundle(bundle, { store, trustedRoot: signing.trustedRoot, syncIdentity: signing.policy });
      return { ms: performance.now() - t0, cpuMs: cpuNow() - c0, syncs, result: r };
    } finally {
      if (profiler) await saveProfile(profiler, profileDir);
      await store.close();
    }
  };

  // ---- #1 and its raw peer, ROUNDS times: each round starts after a `sync` (so writeback left by the sync or the
  //      previous run is not charged to whoever runs next), and the order alternates (import first in even
  //      rounds, the peer first in odd ones), with a `sync` between the two ----
  const s1 = await sync(gen1, 1);
  const samples = { first: [], second: [], nofsync: [], peer: [], rawPeer: [], base: [] };
  const cpu = { first: [], second: [], base: [] };
  const perRound = [];
  let syncCounts;
  const skipped = [];
  const flush = () => execFileSync('sync');
  const importFirst = async (r) => {
    const a = await importInto(join(scope.root, `store-${r}`), s1.bundlePath);
    if (a.result.blobs !== BLOBS || a.result.newBlobs !== BLOBS)
      throw new Error(`import 1: ${a.result.blobs} blobs, ${a.result.newBlobs} new`);
    samples.first.push(a.ms);
    cpu.first.push(a.cpuMs);
    syncCounts = a.syncs;
    return a;
  };
  // The durable writes alone: the same blobs written as plain files, fsynced 512 at a time concurrently on the
  // libuv pool, one directory fsync per batch (no hashing, no tar, no index).
  const rawPeer = async (r) => {
    const rawDir = scope.dir(`peer-raw-${r}`);
    const t1 = performance.now();
    for (let b = 0; b < gen1.length; b += 512) {
      const fds = gen1.slice(b, b + 512).map((f, i) => {
        const fd = openSync(join(rawDir, String(b + i)), 'wx');
        writeSync(fd, f.bytes);
        return fd;
      });
      await Promise.all(fds.map((fd) => fsyncAsync(fd)));
      for (const fd of fds) closeSync(fd);
      const dfd = openSync(rawDir, 'r');
      await fsyncAsync(dfd);
      closeSync(dfd);
    }
    const ms = performance.now() - t1;
    samples.rawPeer.push(ms);
    return ms;
  };
  // Another build's importer (BENCH_IMPORT_BASELINE), run on the same bundle in the same rounds: an A/B.
  const baseImport = async (r) => {
    const storeDir = join(scope.root, `store-base-${r}`);
    mkdirSync(storeDir, { recursive: true });
    const store = await BASELINE.MirrorStore.open(storeDir, {});
    try {
      const t = performance.now();
      const c0 = cpuNow();
      const res = await BASELINE.importBundle(s1.bundlePath, {
        store,
        trustedRoot: signing.trustedRoot,
        syncIdentity: signing.policy,
      });
      if (res.newBlobs !== BLOBS) throw new Error(`baseline import: ${res.newBlobs} new blobs`);
      const ms = performance.now() - t;
      samples.base.push(ms);
      cpu.base.push(cpuNow() - c0);
      return ms;
    } finally {
      await store.close();
    }
  };
  const round1 = async (r) => {
    const runs = ['import', ...(BASELINE ? ['base'] : []), 'raw'];
    if (r % 2 === 1) runs.reverse();
    const ms = {};
    let a;
    for (const what of runs) {
      flush();
      if (what === 'import') {
        a = await importFirst(r);
        ms.import = a.ms;
      } else if (what === 'base') ms.base = await baseImport(r);
      else ms.raw = await rawPeer(r);
    }
    const rate = (x) => Math.round(BLOBS / (x / 1000));
    perRound.push({
      round: r + 1,
      order: runs.join(', '),
      import: rate(ms.import),
      ...(BASELINE ? { baseline: rate(ms.base) } : {}),
      rawPeer: rate(ms.raw),
    });
    console.log(
      `  round ${r + 1} (${runs.join(' → ')}): import #1 ${(a.ms / 1000).toFixed(2)} s ` +
        `(${rate(a.ms)} blobs/s, ${((a.cpuMs * 1000) / BLOBS).toFixed(0)} µs CPU/blob; ${a.syncs.file} file + ${a.syncs.dir} dir fsyncs); ` +
        (BASELINE
          ? `baseline ${(ms.base / 1000).toFixed(2)} s (${rate(ms.base)} blobs/s, ${((cpu.base.at(-1) * 1000) / BLOBS).toFixed(0)} µs CPU/blob); `
          : '') +
        `raw fsync'd writes ${(ms.raw / 1000).toFixed(2)} s (${rate(ms.raw)} blobs/s); import ÷ peer ${(ms.raw / a.ms).toFixed(2)}×`,
    );
  };
  if (PROFILE) {
    // Profiled on its own, before the rounds: the profiler slows it down, so it is not counted.
    flush();
    const p = await importInto(join(scope.root, 'store-profiled'), s1.bundlePath, true, PROFILE);
    console.log(`  profiled import (not counted): ${(p.ms / 1000).toFixed(2)} s`);
  }
  await round1(0);

  // ---- peer, same run: GNU tar extracts the bundle, sha256sum hashes every blob, one `sync -f` makes it durable
  //      (no per-file durability, no signature or manifest checks: a floor, not an equivalent) ----
  const peerDir = scope.dir('peer');
  flush();
  const t0 = performance.now();
  execFileSync('sh', [
    '-c',
    'tar -xf "$1" -C "$2" && cd "$2" && find blobs -type f -print0 | xargs -0 sha256sum > /dev/null && sync -f .',
    'peer',
    s1.bundlePath,
    peerDir,
  ]);
  samples.peer.push(performance.now() - t0);
  console.log(`  peer: tar -x + sha256sum + sync -f ${(samples.peer[0] / 1000).toFixed(2)} s`);

  // ---- diagnostic: #1 without the blob store's fsyncs (the journal's fdatasync per new blob remains) ----
  if (fits(median(samples.first))) {
    const c = await importInto(join(scope.root, 'store-nofsync'), s1.bundlePath, false);
    samples.nofsync.push(c.ms);
    console.log(`  diagnostic: import #1 with the blob store's fsyncs off ${(c.ms / 1000).toFixed(2)} s`);
  } else skipped.push('the fsync-off diagnostic');

  // ---- #2: the next snapshot on top of the first store (its sync costs about what the first one did) ----
  let s2;
  let newInSecond;
  const shared = gen2.filter((f, i) => f === gen1[i]).length;
  if (fits(s1.durationMs + median(samples.first))) {
    s2 = await sync(gen2, 2);
    console.log(`snapshot 2 shares ${shared} of ${BLOBS} blobs with snapshot 1`);
    const b = await importInto(join(scope.root, 'store-0'), s2.bundlePath);
    if (b.result.snapshot.sequence !== 2) throw new Error('import 2 did not commit snapshot 2');
    newInSecond = b.result.newBlobs;
    samples.second.push(b.ms);
    cpu.second.push(b.cpuMs);
    console.log(`  import #2: ${(b.ms / 1000).toFixed(2)} s (${b.result.newBlobs} new blobs)`);
  } else skipped.push('snapshot 2 (sync + import #2)');

  for (let r = 1; r < ROUNDS; r++) {
    if (!fits(median(samples.first) + median(samples.rawPeer) + (BASELINE ? median(samples.base) : 0))) {
      skipped.push(`import #1 rounds ${r + 1}–${ROUNDS}`);
      break;
    }
    await round1(r);
  }
  if (skipped.length)
    console.log(`time budget (${BUDGET_MS / 1000} s for the whole bench): skipped ${skipped.join(', ')}`);

  const row = (what, ms, blobs, bytes, bundle, note, cpuMs) => ({
    import: what,
    seconds: round(ms / 1000, 2),
    blobsPerSec: Math.round(blobs / (ms / 1000)),
    cpuUsPerBlob: cpuMs === undefined ? '' : Math.round((cpuMs * 1000) / blobs),
    mbPerSec: round(bytes / 1e6 / (ms / 1000), 2),
    blobs,
    mb: round(bytes / 1e6, 1),
    bundleMb: round(bundle / 1e6, 1),
    note,
  });
  const rows = [
    row(
      '#1 into an empty store',
      median(samples.first),
      BLOBS,
      bytes1,
      s1.bytes,
      `median of ${samples.first.length} run(s)`,
      median(cpu.first),
    ),
  ];
  rows.push(
    row(
      'peer: tar -x + sha256sum + sync -f',
      median(samples.peer),
      BLOBS,
      bytes1,
      s1.bytes,
      `import #1 at ${round(median(samples.peer) / median(samples.first), 2)}× the peer's rate`,
    ),
  );
  rows.push(
    row(
      "peer: raw fsync'd writes, 512/batch",
      median(samples.rawPeer),
      BLOBS,
      bytes1,
      s1.bytes,
      `import #1 at ${round(median(samples.rawPeer) / median(samples.first), 2)}× the peer's rate`,
    ),
  );
  if (BASELINE)
    rows.push(
      row(
        'baseline build, #1',
        median(samples.base),
        BLOBS,
        bytes1,
        s1.bytes,
        `${BASELINE.root}; import #1 at ${round(median(samples.base) / median(samples.first), 2)}× its rate`,
        median(cpu.base),
      ),
    );
  if (samples.nofsync.length)
    rows.push(
      row(
        '#1, blob fsyncs off (diag.)',
        median(samples.nofsync),
        BLOBS,
        bytes1,
        s1.bytes,
        'journal fdatasync kept; not a mode',
      ),
    );
  if (s2)
    rows.push(
      row(
        '#2 next snapshot on top',
        median(samples.second),
        BLOBS,
        bytes2,
        s2.bytes,
        `${newInSecond} new blobs written`,
        median(cpu.second),
      ),
    );
  console.log('');
  printTable(rows, ['import', 'seconds', 'blobsPerSec', 'cpuUsPerBlob', 'mbPerSec', 'blobs', 'mb', 'bundleMb', 'note']);
  console.log(
    '\nblobs/s and MB/s count every blob in the bundle (all are read and verified; #2 writes only the new ones).',
  );
  console.log(
    `CPU per blob: the importing process, all threads. Syncs per import #1: ${syncCounts.file} file + ${syncCounts.dir} directory fsyncs.`,
  );
  if (samples.nofsync.length) {
    const perBlob = (median(samples.first) - median(samples.nofsync)) / BLOBS;
    console.log(
      `The blob file + directory fsyncs cost ${perBlob.toFixed(2)} ms per blob here: ${(100 * (1 - median(samples.nofsync) / median(samples.first))).toFixed(0)}% ` +
        "of import #1 (each batch's journal lines are fdatasync'd in both rows).",
    );
  }
  if (stockRefusal)
    console.log(`Signed with a raised log body limit: the stock trust plane refused (${stockRefusal}).`);

  const after = await machineLoad();
  emit({
    summary: {
      import1_s: rows[0].seconds,
      import1_blobs_per_s: rows[0].blobsPerSec,
      import1_mbps: rows[0].mbPerSec,
      import1_cpu_us_per_blob: rows[0].cpuUsPerBlob,
      import1_file_fsyncs: syncCounts.file,
      import1_dir_fsyncs: syncCounts.dir,
      peer_blobs_per_s: rows[1].blobsPerSec,
      import1_vs_peer: round(median(samples.peer) / median(samples.first), 2),
      raw_fsync_peer_blobs_per_s: rows[2].blobsPerSec,
      import1_vs_raw_fsync_peer: round(median(samples.rawPeer) / median(samples.first), 2),
      ...(BASELINE
        ? {
            baseline_blobs_per_s: Math.round(BLOBS / (median(samples.base) / 1000)),
            import1_vs_baseline: round(median(samples.base) / median(samples.first), 2),
          }
        : {}),
      ...(samples.nofsync.length ? { import1_nofsync_s: round(median(samples.nofsync) / 1000, 2) } : {}),
      ...(s2 ? { import2_s: round(median(samples.second) / 1000, 2) } : {}),
      bundle_mb: rows[0].bundleMb,
      stock_plane_signs: stockRefusal === undefined,
    },
    blobs: BLOBS,
    signing: stockRefusal
      ? { plane: 'stock services, log body limit raised to 64 MiB', stockRefusal }
      : { plane: 'stock startTrustPlane' },
    sharedInSnapshot2: shared,
    skipped,
    sync: {
      upstream: upstream.name,
      snapshot1: { ms: s1.durationMs, bytes: s1.bytes },
      ...(s2 ? { snapshot2: { ms: s2.durationMs, bytes: s2.bytes } } : {}),
    },
    rounds: perRound,
    samplesMs: samples,
    cpuMs: cpu,
    machine: { before: load, after },
    rows,
  });
});
