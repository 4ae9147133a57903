#!/usr/bin/env node
// S3-backed vs local-disk mirror store, same run, same bundle: a real one-node Ceph radosgw (started here, bluestore
// on a sparse file, 127.0.0.1) against an FsBlobStore directory on the same disk.
//   import: `importBundle` of one signed transfer bundle (BLOBS small blobs 256 B – 16 KiB plus LARGE blobs of
//           4 MiB) into an empty store — every blob hashed, journaled, written (conditional PUTs on S3, up to 16
//           at a time; on disk temp files fsynced per batch + links + one fsync per directory) and one atomic commit. Rounds alternate the backends; median reported.
//   GET:    the mirror server (in-process, one worker) serving every blob once over HTTP with CONCURRENCY parallel
//           clients: cold (first read: the S3 store fetches and hashes; the disk store hashes the file) and warm
//           (verified-cache hits: the S3 store still checks the object version with a HEAD or an If-Match GET).
// Reports blobs/s and MB/s per backend and the S3 / disk ratio.
//
// Env: BENCH_S3_BLOBS (default 2000), BENCH_S3_LARGE (default 8), BENCH_S3_ROUNDS (default 2),
//      BENCH_S3_CONCURRENCY (default 16).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { emit, printTable, skip } from './lib.mjs';
import {
  createScope,
  importBuilt,
  machineLoad,
  median,
  prng,
  round,
  runBench,
  sha256Hex,
  startJsonChild,
  startSigning,
} from './lib-mirror.mjs';

const BLOBS = Math.max(1, Number(process.env.BENCH_S3_BLOBS ?? 2000));
const LARGE = Math.max(0, Number(process.env.BENCH_S3_LARGE ?? 8));
const ROUNDS = Math.max(1, Number(process.env.BENCH_S3_ROUNDS ?? 2));
const CONCURRENCY = Math.max(1, Number(process.env.BENCH_S3_CONCURRENCY ?? 16));

const testkit = await importBuilt('packages/testkit');
const problem = testkit.radosgwProblem();
if (problem) skip(problem);
const { syncToBundle } = await importBuilt('mirror-sync');
const { importBundle, startMirrorServer } = await importBuilt('packages/mirror');
const { MirrorStore } = await importBuilt('packages/cas');
const { openS3BlobStore } = await importBuilt('packages/s3');
const scope = createScope('s3');

function makeBlob(rand, id, size) {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((rand() * 2 ** 32) >>> 0, i);
  b.write(`${id}\n`, 0);
  return b;
}

await runBench(scope, async () => {
  const load = await machineLoad();
  console.log(`machine: ${load.cpus} cores, load average ${load.load1} before start (shared machine)`);
  const t0 = performance.now();
  const rgw = await testkit.startRadosgw({ parent: scope.root });
  scope.defer(() => rgw.stop());
  console.log(`radosgw ready in ${((performance.now() - t0) / 1000).toFixed(1)} s at ${rgw.endpoint}`);

  const rand = prng(11);
  const files = [
    ...Array.from({ length: BLOBS }, (_, i) => ({
      name: `small-${i}.bin`,
      bytes: makeBlob(rand, `s-${i}`, Math.round(256 * 64 ** rand())),
    })),
    ...Array.from({ length: LARGE }, (_, i) => ({ name: `large-${i}.bin`, bytes: makeBlob(rand, `l-${i}`, 4 << 20) })),
  ];
  const totalBytes = files.reduce((n, f) => n + f.bytes.length, 0);
  const upDir = scope.dir('upstream', 'files');
  for (const f of files) writeFileSync(join(upDir, f.name), f.bytes);
  const up = await startJsonChild(scope, process.execPath, [
    join(import.meta.dirname, 'lib-mirror-static.mjs'),
    join(scope.root, 'upstream'),
  ]);
  const list = join(scope.root, 'list.json');
  writeFileSync(
    list,
    JSON.stringify(files.map((f) => ({ url: `${up.json.url}/files/${f.name}`, sha256: sha256Hex(f.bytes) }))),
  );
  // The stock plane: BLOBS stays small enough for its 1 MiB log body limit (≈ 230 bytes per blob subject).
  const signing = await startSigning(scope, scope.dir('plane'));
  const bundle = join(scope.root, 'bundle.tar');
  await syncToBundle({
    inputs: [{ path: list, kind: 'generic' }],
    out: bundle,
    state: join(scope.root, 'state.json'),
    signer: signing.signer,
    concurrency: 16,
    perHostConcurrency: 16,
    quiet: true,
    progress: 'none',
  });
  console.log(`bundle: ${files.length} blobs, ${(totalBytes / 1e6).toFixed(1)} MB`);

  const env = rgw.env();
  let prefixes = 0;
  const open = {
    disk: async (r) => MirrorStore.open(scope.dir(`disk-${r}`)),
    s3: async (r) => {
      const blobStore = await openS3BlobStore(`s3://bench/r${r}-${++prefixes}`, { env, createBucket: true });
      const store = await MirrorStore.open(scope.dir(`s3-index-${r}-${prefixes}`), { blobStore });
      return { store, blobStore };
    },
  };
  const importMs = { disk: [], s3: [] };
  const stores = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const kind of r % 2 === 0 ? ['disk', 's3'] : ['s3', 'disk']) {
      const opened = await open[kind](r);
      const store = opened.store ?? opened;
      const t = performance.now();
      const res = await importBundle(bundle, { store, trustedRoot: signing.trustedRoot, syncIdentity: signing.policy });
      const ms = performance.now() - t;
      if (res.newBlobs !== files.length) throw new Error(`${kind}: imported ${res.newBlobs} of ${files.length} blobs`);
      importMs[kind].push(ms);
      console.log(`  import round ${r + 1} ${kind}: ${(ms / 1000).toFixed(2)} s`);
      if (r === ROUNDS - 1) stores[kind] = opened;
      else {
        await store.close();
        opened.blobStore?.close();
      }
    }
  }

  const digests = files.map((f) => ({ hex: sha256Hex(f.bytes), size: f.bytes.length }));
  const getMs = { disk: {}, s3: {} };
  for (const kind of ['disk', 's3']) {
    const store = stores[kind].store ?? stores[kind];
    const server = await startMirrorServer({ store, host: '127.0.0.1', port: 0 });
    try {
      for (const pass of ['cold', 'warm']) {
        const t = performance.now();
        let next = 0;
        const worker = async () => {
          for (let i = next++; i < digests.length; i = next++) {
            const r = await fetch(`${server.url}/blobs/sha256/${digests[i].hex}`);
            const body = Buffer.from(await r.arrayBuffer());
            if (r.status !== 200 || body.length !== digests[i].size)
              throw new Error(`${kind} GET ${digests[i].hex}: ${r.status}, ${body.length} bytes`);
          }
        };
        await Promise.all(Array.from({ length: CONCURRENCY }, worker));
        getMs[kind][pass] = performance.now() - t;
        console.log(`  GET ${pass} ${kind}: ${(getMs[kind][pass] / 1000).toFixed(2)} s`);
      }
    } finally {
      await server.close();
      await store.close();
      stores[kind].blobStore?.close();
    }
  }

  const row = (what, kind, ms) => ({
    what,
    backend: kind === 's3' ? 'S3 (radosgw)' : 'local disk',
    seconds: round(ms / 1000, 2),
    blobsPerSec: Math.round(files.length / (ms / 1000)),
    mbPerSec: round(totalBytes / 1e6 / (ms / 1000), 1),
  });
  const imp = { disk: median(importMs.disk), s3: median(importMs.s3) };
  const rows = [
    row('import', 'disk', imp.disk),
    row('import', 's3', imp.s3),
    row('GET cold', 'disk', getMs.disk.cold),
    row('GET cold', 's3', getMs.s3.cold),
    row('GET warm', 'disk', getMs.disk.warm),
    row('GET warm', 's3', getMs.s3.warm),
  ];
  console.log('');
  printTable(rows, ['what', 'backend', 'seconds', 'blobsPerSec', 'mbPerSec']);
  const ratio = (a, b) => round(b / a, 2);
  const ratios = {
    import: ratio(imp.s3, imp.disk),
    get_cold: ratio(getMs.s3.cold, getMs.disk.cold),
    get_warm: ratio(getMs.s3.warm, getMs.disk.warm),
  };
  console.log(
    `\nS3 throughput as a fraction of local disk: import ${ratios.import}×, GET cold ${ratios.get_cold}×, GET warm ${ratios.get_warm}× ` +
      `(${files.length} blobs, ${(totalBytes / 1e6).toFixed(1)} MB, ${CONCURRENCY} parallel GETs; import median of ${ROUNDS})`,
  );
  const after = await machineLoad();
  emit({
    summary: {
      import_disk_blobs_per_s: rows[0].blobsPerSec,
      import_s3_blobs_per_s: rows[1].blobsPerSec,
      get_cold_disk_mbps: rows[2].mbPerSec,
      get_cold_s3_mbps: rows[3].mbPerSec,
      get_warm_disk_mbps: rows[4].mbPerSec,
      get_warm_s3_mbps: rows[5].mbPerSec,
      s3_over_disk: ratios,
    },
    blobs: files.length,
    bytes: totalBytes,
    samplesMs: { import: importMs, get: getMs },
    machine: { before: load, after },
    rows,
  });
});
