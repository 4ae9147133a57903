export * from './errors.js';
export * from './spiffe.js';
export * from './build-claims.js';
export { normalizeIssuerUrl, validateIssuerUrl, discoveryUrlFor } from './issuer-url.js';
export {
  IdentityIssuer,
  readIssuerMetadata,
  writeIssuerMetadata,
  DEFAULT_AUDIENCE,
  DEFAULT_TRUST_DOMAIN,
  DEFAULT_TOKEN_TTL_SECONDS,
  DEFAULT_MAX_TOKEN_TTL_SECONDS,
  IDENTITY_DIR,
  SIGNING_KEY_FILE,
  ISSUER_METADATA_FILE,
  ISSUER_ALG,
  KEY_IN_TOKEN_MARKER,
  type ExternalJwtSigner,
  type IdentityIssuerOptions,
  type IssueTokenRequest,
  type IssuerMetadata,
} from './issuer.js';
export { startIdentityIssuer, type StartIdentityIssuerOptions, type IdentityIssuerServer } from './server.js';
export { validateTrustedIssuers, type TrustedIssuer, type TrustedIssuerType } from './trusted-issuer.js';
export { principalFromClaims, type OidcPrincipal, type SubjectAltName } from './principal.js';
export {
  verifyOidcToken,
  OidcTokenVerifier,
  JwksCache,
  ALLOWED_JWT_ALGORITHMS,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  type VerifyOidcTokenOptions,
  type VerifiedOidcToken,
} from './verify.js';
export {
  parseTrustBundle,
  spiffeIdOfPeer,
  compileSpiffeAllowList,
  spiffeAuthorizer,
  spiffeTlsServerOptions,
  refuseUnauthorized,
  serviceMtls,
  type ServiceMtlsOptions,
  type SpiffeMtlsConfig,
  type SpiffeAuthorization,
} from './mtls.js';
export {
  x509SvidToJson,
  splitDerCertificates,
  readX509SvidFile,
  x509SvidToPem,
  type X509Svid,
  type X509SvidJson,
  type X509SvidPem,
} from './x509-svid.js';
export {
  watchX509Svid,
  writeX509SvidFiles,
  svidRefreshDelayMs,
  svidRetryDelayMs,
  SVID_FILES,
  type X509SvidWatcher,
  type X509SvidWatcherOptions,
} from './svid-rotation.js';
