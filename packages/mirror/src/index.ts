export { MirrorError, HttpError, type MirrorErrorCode } from './errors.js';
export {
  createMirrorServer,
  startMirrorServer,
  normalizePublicUrl,
  type MirrorServer,
  type MirrorServerOptions,
  type MirrorTlsOptions,
  type RunningMirrorServer,
  type StartMirrorServerOptions,
} from './server/server.js';
export type { WorkerStoreOpener } from './server/worker-protocol.js';
export { routeRequest, createRequestHandler } from './server/router.js';
export { ResponseCache, type MirrorContext } from './server/context.js';
export { sendBlob, type BlobResponseOptions } from './server/blob-response.js';
export {
  parseRequestPath,
  parseAccept,
  negotiate,
  parseRange,
  etagMatches,
  MAX_URL_LENGTH,
  type RequestPath,
  type RangeRequest,
} from './server/http-utils.js';
export {
  buildPackument,
  abbreviate,
  npmTarballUrl,
  parseNpmPath,
  NPM_ABBREVIATED,
  type Packument,
  type AbbreviatedPackument,
  type NpmRequest,
} from './server/routes/npm.js';
export { parsePypiPath, pypiFileUrl, PYPI_JSON, PYPI_HTML, type PypiRequest } from './server/routes/pypi.js';
export { parseHashedPath, parseBlobPath, type HashedRequest } from './server/routes/hashed.js';
export {
  exportBazelRepositoryCache,
  type BazelCacheExportOptions,
  type BazelCacheExportReport,
} from './bazel-repository-cache.js';
export * from './import/index.js';
