export * from './errors.js';
export * from './import-bundle.js';
export { validateTransferManifest } from './manifest-schema.js';
