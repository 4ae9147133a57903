import { createRequire } from 'node:module';
import { AgentError } from './errors.js';

/** The N-API addon built from `native/peer.cc` at install time (node-gyp). */
export interface PeerNative {
  /** SO_PEERCRED: pid, uid and gid of the peer as recorded by the kernel at connect(). */
  peerCred(fd: number): { pid: number; uid: number; gid: number };
  /** SO_PEERPIDFD (Linux ≥ 6.5): a pidfd for the connecting process itself; -1 when the kernel lacks it. */
  peerPidfd(fd: number): number;
  /** pidfd_open(2): pins the process that holds `pid` now. */
  pidfdOpen(pid: number): number;
  /** pidfd_send_signal(pidfd, 0): false once the pinned process has exited. */
  pidfdAlive(pidfd: number): boolean;
  closeFd(fd: number): void;
}

let loaded: PeerNative | undefined;

/** Loads the addon once; a missing build is a clear error naming how to build it. */
export function peerNative(): PeerNative {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  try {
    loaded = require('../build/Release/airlock_peer.node') as PeerNative;
  } catch (err) {
    throw new AgentError(
      'AGENT_NATIVE_UNAVAILABLE',
      `the agent's native addon (SO_PEERCRED, pidfd) is not built: run 'npm rebuild @airlock/agent' ` +
        `(needs g++, make, python3 and Node's headers): ${(err as Error).message}`,
      { cause: err },
    );
  }
  return loaded;
}

/** The file descriptor behind a connected net.Socket (libuv's Pipe handle exposes it as `_handle.fd`). */
export function socketFd(socket: object): number {
  const handle = (socket as { _handle?: { fd?: unknown } })._handle;
  const fd = handle?.fd;
  if (typeof fd !== 'number' || fd < 0)
    throw new AgentError('AGENT_PEER_UNKNOWN', 'the connection has no file descriptor');
  return fd;
}
