export * from './errors.js';
export * from './trusted-root.js';
export * from './verifier.js';
export * from './strict-bundle.js';
export { certificateIdentity, type CertificateIdentity } from './leaf.js';
export type { WitnessPolicy } from './witness.js';
export { MemoCertificate, encodeDer, stockToDer } from './memo-certificate.js';
