#!/usr/bin/env node
// A static file server in its own process, for benchmarks that need an upstream which does not share the event
// loop of the code being measured (the sync bench when nginx is not installed):
//   node test/bench/lib-mirror-static.mjs <root>   → prints {"url":"http://127.0.0.1:<port>"}, serves GET <root>/<path>
// Only plain files under <root> are served; anything else is 404. Stops on SIGTERM.
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, sep } from 'node:path';

const root = realpathSync(process.argv[2] ?? '.');
const server = createServer((req, res) => {
  let path;
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
  } catch {
    res.writeHead(400).end();
    return;
  }
  const file = join(root, path);
  let st;
  try {
    if (!realpathSync(file).startsWith(root + sep)) throw new Error('outside root');
    st = statSync(file);
  } catch {
    res.writeHead(404).end();
    return;
  }
  if (!st.isFile()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(st.size) });
  createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res);
});
server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => {
  console.log(JSON.stringify({ url: `http://127.0.0.1:${server.address().port}` }));
});
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
