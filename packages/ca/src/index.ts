import './reflect-polyfill.js';
export * from './errors.js';
export {
  CertificateAuthority,
  DEFAULT_CERT_VALIDITY_SECONDS,
  type CertificateAuthorityOptions,
  type SigningCertificateRequest,
  type IssuedCertificate,
  type CaSubject,
  type TrustBundle,
  type CaConfiguration,
} from './authority.js';
export { startCaServer, type StartCaServerOptions, type CaServer } from './server.js';
export {
  loadOrCreateCaMaterial,
  CA_DIR,
  ROOT_CERT_FILE,
  ROOT_KEY_FILE,
  INTERMEDIATE_CERT_FILE,
  INTERMEDIATE_KEY_FILE,
  ROOT_VALIDITY_MS,
  INTERMEDIATE_VALIDITY_MS,
  CHAIN_BACKDATE_MS,
  type CaKeyOptions,
  type CaMaterial,
} from './ca-keys.js';
export {
  FULCIO_OID,
  BUILD_CLAIM_OIDS,
  issuerExtensions,
  buildClaimExtensions,
  nodeAttestationExtensions,
} from './extensions.js';
export { derUtf8String, parseDerUtf8String } from './der.js';
export { derSignatureToRaw, type CaKeySigner } from './key-signer.js';
export {
  parseSigningCertRequest,
  signingCertRoute,
  trustBundleRoute,
  configurationRoute,
  errorResult,
  type RouteResult,
} from './routes.js';
export {
  parseSubmittedPublicKey,
  verifyProofOfPossession,
  decodeProofOfPossession,
  parseCsr,
  type SubmittedKey,
} from './public-key.js';
export { createTlsServerPair, type TlsServerPair } from './tls-pair.js';
export {
  createSvidCa,
  loadOrCreateSvidCa,
  issueX509Svid,
  SVID_CA_DIR,
  DEFAULT_SVID_TTL_SECONDS,
  type SvidCa,
  type IssueX509SvidOptions,
} from './svid.js';
