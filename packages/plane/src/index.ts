export * from './trusted-root.js';
export * from './plane.js';
export { openPkcs11Signer, parsePkcs11Uri, type TokenSigner, type Pkcs11KeyUri } from './pkcs11.js';
export * from './signing-config.js';
