export * from './trusted-root.js';
export * from './plane.js';
export * from './signing-config.js';
