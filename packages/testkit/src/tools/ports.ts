import { freeLoopbackPort } from '@airlock/core';

/**
 * A loopback port the kernel has just handed out and released. Nothing reserves it: on a busy machine another
 * process can take it before the caller's daemon binds it, so every fixture that starts a daemon on one retries on
 * a fresh port when the daemon reports the address in use.
 */
export const freePort: () => Promise<number> = freeLoopbackPort;

export interface PortOptions {
  /**
   * Where the daemon's port comes from (default `freePort`). Tests hand out a port another process holds to prove
   * the fixture notices and moves on.
   */
  port?: () => Promise<number>;
}
