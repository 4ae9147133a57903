import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type net from 'node:net';
import { AgentError } from './errors.js';
import { peerNative, socketFd } from './native.js';

/** What the kernel says about a caller, pinned to one process for the duration of a request. */
export interface PeerIdentity {
  pid: number;
  uid: number;
  gid: number;
  /** /proc/<pid>/exe target at inspection time. */
  exePath: string;
  /** sha256 (hex) of the executable the process runs (read through /proc/<pid>/exe, so a replaced file cannot lie). */
  exeSha256: string;
  /** cgroup v2 path (the `0::` line of /proc/<pid>/cgroup), e.g. /system.slice/airlock-runner.service. */
  cgroup: string;
  /** Start time in clock ticks since boot (/proc/<pid>/stat field 22): with the pid, names one process. */
  startTime: string;
  /** How the process was pinned: `SO_PEERPIDFD` (at connect) or `pidfd_open` (at accept). */
  pinnedBy: 'SO_PEERPIDFD' | 'pidfd_open';
  /** This caller's own selectors, matched against registration entries. */
  selectors: string[];
}

/** A connection's peer pinned by a pidfd, taken as early as possible (SO_PEERPIDFD holds it from connect()). */
export interface PinnedPeer {
  pid: number;
  uid: number;
  gid: number;
  pidfd: number;
  pinnedBy: PeerIdentity['pinnedBy'];
}

/** Pins the caller: SO_PEERPIDFD where the kernel has it (unless `pinWith` says otherwise), else pidfd_open now. */
export function pinPeer(socket: net.Socket, pinWith: 'auto' | 'pidfd_open' = 'auto'): PinnedPeer {
  const native = peerNative();
  const fd = socketFd(socket);
  const cred = native.peerCred(fd);
  if (cred.pid <= 0) throw new AgentError('AGENT_PEER_UNKNOWN', 'the caller has no pid in this pid namespace');
  let pidfd = pinWith === 'auto' ? native.peerPidfd(fd) : -1;
  let pinnedBy: PeerIdentity['pinnedBy'] = 'SO_PEERPIDFD';
  if (pidfd < 0) {
    pinnedBy = 'pidfd_open';
    try {
      pidfd = native.pidfdOpen(cred.pid);
    } catch (err) {
      throw new AgentError('AGENT_PEER_CHANGED', `caller pid ${cred.pid} exited before it could be pinned`, {
        cause: err,
      });
    }
  }
  return { ...cred, pidfd, pinnedBy };
}

export function unpin(peer: PinnedPeer): void {
  peerNative().closeFd(peer.pidfd);
}

/** Test seam: runs between reading the caller's /proc facts and re-checking them (to exec/replace the caller there). */
export type InspectHook = (pid: number) => Promise<void>;

/**
 * Digests keyed by the executable file's identity and change times (a rewrite changes ctime); concurrent callers
 * running the same new binary share one hashing.
 */
const digestCache = new Map<string, Promise<string>>();

/**
 * Reads the pinned caller's executable (path and sha256), cgroup and start time, then re-checks that the same
 * process still runs the same file: the pidfd is alive (so the pid was not reused), the start time is unchanged,
 * and /proc/<pid>/exe names the same file (no exec happened while hashing). Any change → AGENT_PEER_CHANGED.
 */
export async function inspectPeer(peer: PinnedPeer, afterRead?: InspectHook): Promise<PeerIdentity> {
  const { pid } = peer;
  assertAlive(peer, 'before inspection');
  const startTime = readStartTime(pid);
  const exe = await readExe(pid);
  const cgroup = readCgroup(pid);
  if (afterRead) await afterRead(pid);
  assertAlive(peer, 'during inspection (pid reuse is not accepted)');
  if (readStartTime(pid) !== startTime) changed(pid, 'its start time changed (another process now holds the pid)');
  const now = exeFileKey(pid);
  if (now.key !== exe.key || now.path !== exe.path) {
    changed(pid, `it executed another program while being inspected (${exe.path} → ${now.path})`);
  }
  return {
    pid,
    uid: peer.uid,
    gid: peer.gid,
    exePath: exe.path,
    exeSha256: exe.sha256,
    cgroup,
    startTime,
    pinnedBy: peer.pinnedBy,
    selectors: [
      `unix:uid:${peer.uid}`,
      `unix:gid:${peer.gid}`,
      `unix:path:${exe.path}`,
      `unix:sha256:${exe.sha256}`,
      ...(cgroup ? [`cgroup:${cgroup}`] : []),
    ],
  };
}

function changed(pid: number, why: string): never {
  throw new AgentError('AGENT_PEER_CHANGED', `caller pid ${pid} refused: ${why}`);
}

function assertAlive(peer: PinnedPeer, when: string): void {
  if (!peerNative().pidfdAlive(peer.pidfd)) changed(peer.pid, `the connecting process exited ${when}`);
}

function procRead<T>(pid: number, what: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new AgentError('AGENT_PEER_UNKNOWN', `cannot read /proc/${pid}/${what}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function readStartTime(pid: number): string {
  const stat = procRead(pid, 'stat', () => fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  // comm (field 2) may contain spaces and parentheses: the fields after it start behind the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = rest[22 - 3];
  if (start === undefined || !/^\d+$/.test(start))
    throw new AgentError('AGENT_PEER_UNKNOWN', `/proc/${pid}/stat is malformed`);
  return start;
}

function readCgroup(pid: number): string {
  const text = procRead(pid, 'cgroup', () => fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  const lines = text.split('\n');
  const unified = lines.find((l) => l.startsWith('0::'));
  if (unified !== undefined) return unified.slice(3);
  const systemd = lines.find((l) => l.includes(':name=systemd:'));
  return systemd ? systemd.slice(systemd.indexOf(':name=systemd:') + ':name=systemd:'.length) : '';
}

function exeFileKey(pid: number): { path: string; key: string } {
  return procRead(pid, 'exe', () => {
    const path = fs.readlinkSync(`/proc/${pid}/exe`);
    const st = fs.statSync(`/proc/${pid}/exe`, { bigint: true });
    return { path, key: `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}` };
  });
}

/** Path, file identity and sha256 of what the process executes, hashed through /proc/<pid>/exe itself. */
async function readExe(pid: number): Promise<{ path: string; key: string; sha256: string }> {
  const { path, key } = exeFileKey(pid);
  const shared = digestCache.get(key);
  if (shared !== undefined) {
    // Another caller's hashing failed (it exited, say)? Then hash through our own caller.
    const sha256 = await shared.catch(() => hashExe(pid, key));
    return { path, key, sha256 };
  }
  const digest = hashExe(pid, key);
  digestCache.set(key, digest);
  digest.catch(() => digestCache.delete(key));
  return { path, key, sha256: await digest };
}

/** sha256 through /proc/<pid>/exe; refuses if the file is not (or stops being) the one `key` names. */
async function hashExe(pid: number, key: string): Promise<string> {
  const keyOf = (st: fs.BigIntStats): string => `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(`/proc/${pid}/exe`, 'r');
    if (keyOf(await handle.stat({ bigint: true })) !== key) changed(pid, 'its executable changed while being opened');
    const hash = createHash('sha256');
    for await (const chunk of handle.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
    if (keyOf(await handle.stat({ bigint: true })) !== key) {
      changed(pid, 'its executable file was modified while being hashed');
    }
    return hash.digest('hex');
  } catch (err) {
    if (err instanceof AgentError) throw err;
    throw new AgentError('AGENT_PEER_UNKNOWN', `cannot read /proc/${pid}/exe: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    await handle?.close();
  }
}
