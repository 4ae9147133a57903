export * from './errors.js';
export * from './encoding.js';
export * from './canonical-json.js';
export * from './digest.js';
export * from './dsse.js';
export * from './intoto.js';
export * from './transfer-tar.js';
export * from './http-body.js';
