export * from './trusted-root.js';
export * from './plane.js';
