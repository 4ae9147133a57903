export type * from './types.js';
export * from './server/index.js';
