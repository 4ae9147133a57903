#!/usr/bin/env node
// The floor of the mirror GET benchmark: a bare node:http server answering the benchmark's tarball paths from
// memory with the very headers `airlock mirror serve` sends for a whole blob (ETag, Cache-Control, Accept-Ranges,
// X-Content-Type-Options, Content-Type, Content-Length; Node adds Date, Connection and Keep-Alive for both), and
// the same process model: with N workers, this process and N - 1 forked children serve, this one accepting every
// connection paused and handing it to the next process in turn (as the mirror's WorkerPool does). No routing, no
// verification, no store: what Node itself reaches on this machine, so mirror ÷ floor is what airlock's own work
// costs and floor ÷ nginx is what Node costs.
// With --stat, each request first lstats its file (bigint) and compares device, inode, size, mtime and ctime with
// the values read at start, as the mirror's hot path does for verify-on-read: mirror ÷ this floor is airlock's own
// work beyond that one syscall.
//
// Usage: node lib-mirror-floor.mjs <files.json> <workers> [--stat]   (files.json: [{ path, file, sha256 }])
// Prints {"url": "http://127.0.0.1:<port>"} on stdout once every worker is ready.
import { fork } from 'node:child_process';
import { lstatSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

const IMMUTABLE = 'public, max-age=31536000, immutable';
const LSTAT = { bigint: true, throwIfNoEntry: false };

/** path → { headers, bytes }, headers built once per file (as the mirror builds them once per blob). */
function loadFiles(listFile) {
  const routes = new Map();
  for (const f of JSON.parse(readFileSync(listFile, 'utf8'))) {
    const bytes = readFileSync(f.file);
    const headers = Object.freeze({
      ETag: `"sha256:${f.sha256}"`,
      'Cache-Control': IMMUTABLE,
      'Accept-Ranges': 'bytes',
      'X-Content-Type-Options': 'nosniff',
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(bytes.length),
    });
    const st = lstatSync(f.file, LSTAT);
    routes.set(f.path, { headers, bytes, file: f.file, st });
  }
  return routes;
}

/** The file still is the one read at start (the mirror's check before it answers from memory). */
function unchanged(hit) {
  const st = lstatSync(hit.file, LSTAT);
  const was = hit.st;
  return (
    st !== undefined &&
    st.ctimeNs === was.ctimeNs &&
    st.mtimeNs === was.mtimeNs &&
    st.ino === was.ino &&
    st.size === was.size &&
    st.dev === was.dev &&
    st.isFile()
  );
}

function floorServer(routes, stat) {
  const server = createServer((req, res) => {
    const hit = routes.get(req.url);
    if (!hit || (stat && !unchanged(hit))) {
      res.writeHead(404, { 'Content-Length': '0' });
      res.end();
      return;
    }
    res.writeHead(200, hit.headers);
    res.end(req.method === 'HEAD' ? undefined : hit.bytes);
  });
  // The mirror's settings.
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  return server;
}

const stat = process.argv.includes('--stat');
const [listFile, workersArg, role] = process.argv.slice(2).filter((a) => a !== '--stat');
const routes = loadFiles(listFile);
const server = floorServer(routes, stat);

if (role === 'worker') {
  server.emit('listening');
  process.on('message', (m, socket) => {
    if (m === 'connection' && socket) server.emit('connection', socket);
  });
  process.on('disconnect', () => process.exit(0));
  process.send('ready');
} else {
  const workers = Math.max(1, Number(workersArg ?? 1));
  const children = await Promise.all(
    Array.from(
      { length: workers - 1 },
      () =>
        new Promise((resolve, reject) => {
          const child = fork(fileURLToPath(import.meta.url), [listFile, '1', 'worker', ...(stat ? ['--stat'] : [])], {
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
            execArgv: [],
          });
          child.once('message', (m) => (m === 'ready' ? resolve(child) : reject(new Error(String(m)))));
          child.once('exit', (code) => reject(new Error(`floor worker exited (${code})`)));
        }),
    ),
  );
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  if (children.length > 0) {
    const own = server.listeners('connection');
    server.pauseOnConnect = true;
    server.removeAllListeners('connection');
    let turn = 0;
    server.on('connection', (socket) => {
      const pick = turn++ % (children.length + 1);
      if (pick === 0) {
        for (const l of own) l.call(server, socket);
        socket.resume();
        return;
      }
      children[pick - 1].send('connection', socket, { keepOpen: false });
    });
  }
  const stop = () => {
    for (const c of children) c.kill('SIGTERM');
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` })}\n`);
}
