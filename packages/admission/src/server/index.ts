export * from './server.js';
export * from './metrics.js';
export * from './errors.js';
export * from './tls.js';
export { API_VERSION, denyResponse, parseEnvelope, sanitizeResponse } from './envelope.js';
export {
  manifestsYaml,
  renderManifests,
  deadlineForTimeout,
  WEBHOOK_RULES,
  type ManifestOptions,
  type KubeObject,
} from './manifests.js';
