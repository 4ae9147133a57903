import { setMaxListeners } from 'node:events';

/**
 * Marks `signal` as shared by many readers: one admission request issues dozens of registry reads (tags, referrers,
 * manifests and bundles of each image), each listening for its abort. That is not a leak, and Node's warning past
 * 10 listeners would only fill the server's log.
 */
export function sharedSignal<T extends AbortSignal>(signal: T): T {
  setMaxListeners(0, signal);
  return signal;
}
