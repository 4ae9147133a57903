#!/usr/bin/env node
// Sync throughput against `openssl dgst -sha256` and `sha256sum`, on the same large files in the same run:
//   openssl dgst -sha256        the reference (target: sync ≥ 0.7×), one process over all the files
//   sha256sum                   coreutils over the files (page cache warm), one process, one file after another
//   syncToBundle (end to end)   a generic list of the files fetched from a loopback upstream (nginx when installed,
//                               else a Node static server in its own process): streaming download with sha256 +
//                               the needed digests in one pass (generic files: sha256 only), sealed staging file,
//                               then the bundle tar written and hashed as written (a second copy of every byte)
//   tar write stage             writeBundle alone over the files as staged blobs: sealed (read back, no re-hash)
//                               and named (re-hashed on the way in, the path used past the open-file budget)
//   hashing stage               node's sha256 alone: digestFile (4 MiB reads, ping-pong, like openssl's loop), and
//                               HashingTransform over a 64 KiB-chunk file stream (the size of the chunks fetch hands
//                               over) with the sync's three algorithms and with sha256 only
// CPU seconds per GB (user + system) are printed next to MB/s: on a shared 2-core machine wall time moves with the
// other load, CPU time much less. For the sync it is this process's CPU (the upstream's is printed apart); for
// openssl and sha256sum the child's, from bash's `time`.
//   download only               the same files over HTTP from the upstream with fetch (what the sync uses), bytes
//                               discarded: the transport floor; and with node:http, as a diagnostic of the client
//   disk: durable write         the files copied into one file in the bundle's directory (4 MiB reads and writes,
//                               one fdatasync at the end): the same bytes written once and made durable, the floor of
//                               any sync that leaves a durable bundle (the sync fsyncs its bundle before it returns).
//                               Where this disk writes slower than openssl hashes, it bounds sync ÷ openssl below 1.
// Rounds run the methods round-robin (the machine is shared); medians are reported.
//
// Env: BENCH_SYNC_FILES (default 4), BENCH_SYNC_MIB (MiB per file, default 256), BENCH_SYNC_ROUNDS (default 3).
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  createReadStream,
  fdatasyncSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { get as httpGet } from 'node:http';
import { open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { emit, mbPerSec, printTable, ratio, skip, which } from './lib.mjs';
import {
  createScope,
  findNginx,
  importBuilt,
  machineLoad,
  median,
  round,
  runBench,
  runOk,
  startJsonChild,
  startNginx,
} from './lib-mirror.mjs';

const FILES = Math.max(1, Number(process.env.BENCH_SYNC_FILES ?? 4));
const SIZE = Math.round(Number(process.env.BENCH_SYNC_MIB ?? 256) * 1024 * 1024);
const ROUNDS = Math.max(1, Number(process.env.BENCH_SYNC_ROUNDS ?? 3));
const BUDGET_MS = 150_000; // no round is started that would end after this
const CLK_TCK = 100; // /proc/<pid>/stat ticks per second (USER_HZ, 100 on Linux)

const sha256sum = which('sha256sum');
if (!sha256sum) skip('sha256sum (coreutils) not installed: it is the reference this benchmark compares against');
const openssl = which('openssl');
if (!openssl) skip('openssl not installed: it is the reference this benchmark compares against (issue 12: ≥ 0.7×)');

const { syncToBundle } = await importBuilt('mirror-sync');
const { HashingTransform, digestFile } = await importBuilt('packages/core');
const { writeBundle } = await import(
  pathToFileURL(join(import.meta.dirname, '..', '..', 'mirror-sync', 'dist', 'bundle', 'bundle-writer.js')).href
);
const scope = createScope('sync');

await runBench(scope, async () => {
  const load = await machineLoad();
  console.log(
    `machine: ${load.cpus} cores, load average ${load.load1} before start (shared machine: numbers move with it)`,
  );

  // ---- the files: 16 MiB of random bytes repeated, each copy stamped so no two blocks are equal ----
  const filesDir = scope.dir('files');
  const names = Array.from({ length: FILES }, (_, i) => `big-${i}.bin`);
  const paths = names.map((n) => join(filesDir, n));
  {
    const t0 = performance.now();
    const block = randomBytes(16 << 20);
    let stamp = 0;
    for (const p of paths) {
      const fd = openSync(p, 'w');
      for (let off = 0; off < SIZE; off += block.length) {
        block.writeUInt32BE(stamp++, 0);
        writeSync(fd, block, 0, Math.min(block.length, SIZE - off));
      }
      closeSync(fd);
    }
    console.log(
      `generated ${FILES} × ${(SIZE / 2 ** 20).toFixed(0)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
  }
  const totalBytes = SIZE * FILES;

  // A child's CPU seconds, from bash's `time` (user+system) on stderr.
  const timed = async (cmd, args) => {
    const quoted = [cmd, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    const r = await runOk('bash', ['-c', `TIMEFORMAT='CPU %U %S'; time ${quoted}`], { scope });
    const m = /CPU ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
    return { stdout: r.stdout, cpuS: m ? Number(m[1]) + Number(m[2]) : NaN };
  };
  let childCpu = NaN;
  // sha256sum once to warm the page cache and get the pins.
  const sums = async () => {
    const r = await timed(sha256sum, paths);
    childCpu = r.cpuS;
    return r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]);
  };
  const expected = await sums();

  // ---- the upstream, in another process ----
  let upstream;
  if (findNginx()) {
    const n = await startNginx(scope, filesDir, { workers: 1 });
    upstream = { name: 'nginx (sendfile)', url: n.url, pid: n.child.pid };
  } else {
    const s = await startJsonChild(scope, process.execPath, [
      join(import.meta.dirname, 'lib-mirror-static.mjs'),
      filesDir,
    ]);
    upstream = { name: 'node static server (nginx not installed)', url: s.json.url, pid: s.child.pid };
  }
  console.log(`upstream: ${upstream.name} at ${upstream.url}`);
  // The upstream's CPU seconds (nginx master + workers, or the node server), from /proc; NaN where unreadable.
  const upstreamPids = () => {
    const root = String(upstream.pid ?? '');
    if (!root) return [];
    let kids = [];
    try {
      kids = readFileSync(`/proc/${root}/task/${root}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    } catch {
      // no CONFIG_PROC_CHILDREN: the root process only
    }
    return [root, ...kids];
  };
  const upstreamCpu = () => {
    let ticks = 0;
    for (const pid of upstreamPids()) {
      try {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        ticks += Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
      } catch {
        return NaN;
      }
    }
    return ticks / CLK_TCK;
  };
  const upstreamCpuS = [];
  const list = join(scope.root, 'list.json');
  writeFileSync(list, JSON.stringify(names.map((n, i) => ({ url: `${upstream.url}/${n}`, sha256: expected[i] }))));
  const bundleDir = scope.dir('out');

  const nullSink = () =>
    new Writable({
      write(_chunk, _enc, cb) {
        cb();
      },
    });
  const hashStage = async (algorithms) => {
    for (let i = 0; i < paths.length; i++) {
      const h = new HashingTransform(algorithms);
      await pipeline(createReadStream(paths[i], { highWaterMark: 64 << 10 }), h, nullSink());
      if (h.result.digests.sha256 !== expected[i])
        throw new Error(`hashing stage: ${names[i]} hashed to ${h.result.digests.sha256}, expected ${expected[i]}`);
    }
  };
  // Tar-write stage alone: the bundle writer over the same files as staged blobs, named (re-hashed on the way
  // in) or sealed (open handles, read back as verified); both hash the whole tar once for the bundle's sha256.
  const tarStage = async (sealed) => {
    const out = join(bundleDir, 'stage.tar');
    const handles = sealed ? await Promise.all(paths.map((p) => openFile(p, 'r'))) : [];
    try {
      const blobs = paths.map((p, i) => ({
        sha256: expected[i],
        size: SIZE,
        ...(sealed ? { sealed: handles[i] } : { path: p }),
      }));
      await writeBundle(out, Buffer.from('{}'), [], blobs);
    } finally {
      await Promise.all(handles.map((h) => h.close()));
      rmSync(out, { force: true });
    }
  };
  let syncRun = 0;
  const methods = [
    {
      name: 'openssl dgst -sha256',
      run: async () => {
        const r = await timed(openssl, ['dgst', '-sha256', ...paths]);
        childCpu = r.cpuS;
        const got = r.stdout
          .trim()
          .split('\n')
          .map((l) => l.slice(l.lastIndexOf('=') + 1).trim());
        if (got.join() !== expected.join()) throw new Error('openssl disagrees with sha256sum');
        return { cpuS: childCpu };
      },
    },
    {
      name: 'sha256sum',
      run: async () => {
        const got = await sums();
        if (got.join() !== expected.join()) throw new Error('sha256sum disagrees with itself');
        return { cpuS: childCpu };
      },
    },
    {
      name: 'syncToBundle (end to end)',
      run: async () => {
        const out = join(bundleDir, `bundle-${++syncRun}.tar`);
        const up0 = upstreamCpu();
        const r = await syncToBundle({
          inputs: [{ path: list, kind: 'generic' }],
          out,
          sequence: 1,
          previous: null,
          quiet: true,
          progress: 'none',
        });
        if (r.blobs !== FILES || r.blobBytes !== totalBytes)
          throw new Error(`sync wrote ${r.blobs} blobs, ${r.blobBytes} bytes`);
        rmSync(out, { force: true });
        upstreamCpuS.push(upstreamCpu() - up0);
        return { ms: r.durationMs };
      },
    },
    {
      name: 'disk: durable write',
      run: async () => {
        const out = join(bundleDir, 'copy.out');
        const buf = Buffer.allocUnsafe(4 << 20);
        const fd = openSync(out, 'w');
        try {
          for (const p of paths) {
            const src = openSync(p, 'r');
            for (let n; (n = readSync(src, buf, 0, buf.length)) > 0;) writeSync(fd, buf, 0, n);
            closeSync(src);
          }
          fdatasyncSync(fd);
        } finally {
          closeSync(fd);
          rmSync(out, { force: true });
        }
      },
    },
    { name: 'tar write stage: sealed staging', run: () => tarStage(true) },
    { name: 'tar write stage: named staging', run: () => tarStage(false) },
    {
      name: 'hashing stage: sha256, digestFile 4 MiB',
      run: async () => {
        for (let i = 0; i < paths.length; i++) {
          const r = await digestFile(paths[i], ['sha256']);
          if (r.digests.sha256 !== expected[i]) throw new Error(`digestFile: ${names[i]} hashed wrong`);
        }
      },
    },
    { name: 'hashing stage: sha256+sha512+sha1', run: () => hashStage(['sha256', 'sha512', 'sha1']) },
    { name: 'hashing stage: sha256, 64 KiB stream', run: () => hashStage(['sha256']) },
    {
      name: 'download only (no hashing)',
      run: async () => {
        const sizes = await Promise.all(
          names.map(async (n) => {
            const res = await fetch(`${upstream.url}/${n}`);
            let size = 0;
            for await (const c of res.body) size += c.length;
            return size;
          }),
        );
        if (sizes.reduce((a, b) => a + b, 0) !== totalBytes) throw new Error('download only: short read');
      },
    },
    {
      // Diagnostic: the same transfer through node:http instead of fetch (undici web streams), to show how much of
      // the download cost is the client rather than the network.
      name: 'download only, node:http (diagnostic)',
      run: async () => {
        const sizes = await Promise.all(
          names.map(
            (n) =>
              new Promise((resolve, reject) => {
                httpGet(`${upstream.url}/${n}`, (res) => {
                  let size = 0;
                  res.on('data', (c) => (size += c.length));
                  res.on('end', () => resolve(size));
                  res.on('error', reject);
                }).on('error', reject);
              }),
          ),
        );
        if (sizes.reduce((a, b) => a + b, 0) !== totalBytes) throw new Error('download only (node:http): short read');
      },
    },
  ];

  const times = new Map(methods.map((m) => [m.name, []]));
  const cpus = new Map(methods.map((m) => [m.name, []]));
  const started = performance.now();
  let lastRoundMs = 0;
  for (let r = 0; r < ROUNDS; r++) {
    // Another round only if it should end within the budget.
    if (r > 0 && performance.now() - started + lastRoundMs > BUDGET_MS) {
      console.log(`time budget: stopping after ${r} round(s)`);
      break;
    }
    const roundStart = performance.now();
    for (const m of methods) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const reported = (await m.run()) ?? {};
      const c = process.cpuUsage(c0);
      const ms = reported.ms ?? performance.now() - t0;
      const cpuPerGb = (reported.cpuS ?? (c.user + c.system) / 1e6) / (totalBytes / 1e9);
      times.get(m.name).push(ms);
      cpus.get(m.name).push(cpuPerGb);
      console.log(
        `  round ${r + 1}: ${m.name.padEnd(38)} ${(ms / 1000).toFixed(2)} s  ${mbPerSec(totalBytes, ms)} MB/s  ${cpuPerGb.toFixed(2)} CPU s/GB`,
      );
    }
    lastRoundMs = performance.now() - roundStart;
  }

  const ref = mbPerSec(totalBytes, median(times.get('sha256sum')));
  const row = (n) => rows.find((r) => r.method === n);
  const refOpenssl = mbPerSec(totalBytes, median(times.get('openssl dgst -sha256')));
  const rows = methods.map((m) => {
    const ms = median(times.get(m.name));
    const mb = mbPerSec(totalBytes, ms);
    return {
      method: m.name,
      seconds: round(ms / 1000, 2),
      mbPerSec: mb,
      vsSha256sum: ratio(mb, ref),
      vsOpenssl: ratio(mb, refOpenssl),
      cpuSecPerGB: round(median(cpus.get(m.name)), 2),
      runs: times.get(m.name).length,
    };
  });
  console.log('');
  printTable(rows, ['method', 'seconds', 'mbPerSec', 'vsSha256sum', 'vsOpenssl', 'cpuSecPerGB', 'runs']);
  console.log(
    `\n${FILES} × ${(SIZE / 2 ** 20).toFixed(0)} MiB = ${(totalBytes / 1e6).toFixed(0)} MB; MB = 10^6 bytes; medians. For these generic files the sync`,
  );
  console.log(
    'computes sha256 per byte while downloading (npm tarballs also sha512 and sha1), then sha256 of the whole tar as it',
  );
  console.log(
    'is written (the bundle digest), and writes every byte twice (staging file, bundle); openssl computes one and writes',
  );
  console.log(
    `nothing. cpuSecPerGB: user+system CPU seconds per GB of blob bytes (sync: this process only; the upstream spent a median ${round(median(upstreamCpuS) / (totalBytes / 1e9), 2)} s/GB more).`,
  );
  console.log('syncToBundle runs unsigned here (signing is one fixed-cost statement, not throughput).');
  const diskMb = row('disk: durable write').mbPerSec;
  const syncMb = row('syncToBundle (end to end)').mbPerSec;
  console.log(
    `durable-write floor: this disk took the files at ${diskMb} MB/s (${ratio(diskMb, refOpenssl)}× openssl's hashing); ` +
      `the sync reached ${ratio(syncMb, diskMb)}× of it. A sync that leaves a durable bundle cannot pass ` +
      `min(1, disk ÷ openssl) = ${Math.min(1, ratio(diskMb, refOpenssl))}× openssl here (target 0.7×).`,
  );

  const after = await machineLoad();
  emit({
    summary: {
      sha256sum_mbps: ref,
      openssl_mbps: refOpenssl,
      sync_mbps: row('syncToBundle (end to end)').mbPerSec,
      ratio_sync_openssl: row('syncToBundle (end to end)').vsOpenssl,
      ratio_sync: row('syncToBundle (end to end)').vsSha256sum,
      hash3_mbps: row('hashing stage: sha256+sha512+sha1').mbPerSec,
      ratio_hash3: row('hashing stage: sha256+sha512+sha1').vsSha256sum,
      ratio_sha256_stage: row('hashing stage: sha256, 64 KiB stream').vsSha256sum,
      sync_cpu_s_per_gb: row('syncToBundle (end to end)').cpuSecPerGB,
      openssl_cpu_s_per_gb: row('openssl dgst -sha256').cpuSecPerGB,
      upstream_cpu_s_per_gb: round(median(upstreamCpuS) / (totalBytes / 1e9), 2),
      disk_durable_mbps: row('disk: durable write').mbPerSec,
      ratio_disk_openssl: row('disk: durable write').vsOpenssl,
      ratio_sync_disk: ratio(row('syncToBundle (end to end)').mbPerSec, row('disk: durable write').mbPerSec),
    },
    files: FILES,
    bytesPerFile: SIZE,
    upstream: upstream.name,
    machine: { before: load, after },
    rows,
  });
});
