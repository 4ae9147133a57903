export * from './errors.js';
export * from './material.js';
export * from './authority.js';
export * from './server.js';
