/** Resource limits of builds: cgroup v1/v2, rlimit fallback, disk watcher (see confine.ts). */
export {
  confinementConfig,
  openConfinement,
  type Confinement,
  type ConfinementConfig,
  type ConfinementMode,
  type LimitExceeded,
  type LimitName,
} from './confine.js';
export {
  DEFAULT_LIMITS,
  DEFAULT_CGROUP_ROOT,
  formatBytes,
  parseCores,
  parseCount,
  parseSize,
  resolveLimits,
  type ResourceLimitOptions,
  type ResourceLimits,
} from './limits.js';
export { limitError } from './error.js';
