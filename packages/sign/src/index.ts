export * from './errors.js';
export * from './signer.js';
export * from './key-signer.js';
