/**
 * The tar header of every entry of a transfer bundle. mirror-sync writes exactly these fields (with tar-stream's
 * ustar encoding) and the importer in @airlock/mirror accepts only headers byte-identical to what they encode to:
 * plain files, mode 0644, owner 0:0 without user or group names, mtime 0. Nothing in a header is left free to
 * vary, so identical inputs give identical bundles and a changed header byte is always a refusal.
 */
export interface TransferTarHeader {
  name: string;
  size: number;
  type: 'file';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
}

export function transferTarHeader(name: string, size: number): TransferTarHeader {
  return { name, size, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: new Date(0) };
}
