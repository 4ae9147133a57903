import { createReadStream } from 'node:fs';
import tar from 'tar-stream';

export interface TarEntry {
  name: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  type: string;
  body: Buffer;
}

/** Reads a whole (small) bundle for assertions. */
export async function readTar(path: string, keepBodies = true): Promise<TarEntry[]> {
  const ex = tar.extract();
  const out: TarEntry[] = [];
  const done = (async () => {
    for await (const entry of ex) {
      const chunks: Buffer[] = [];
      for await (const c of entry as AsyncIterable<Buffer>) if (keepBodies) chunks.push(c);
      const h = entry.header;
      out.push({
        name: h.name,
        size: h.size,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime.getTime(),
        type: h.type,
        body: Buffer.concat(chunks),
      });
    }
  })();
  createReadStream(path).pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  return out;
}
