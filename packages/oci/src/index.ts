export * from './errors.js';
export * from './media-types.js';
export * from './reference.js';
export * from './layout.js';
export { registryErrorText, type HttpOptions } from './http.js';
export * from './registry.js';
export * from './cosign.js';
export * from './bundles.js';
