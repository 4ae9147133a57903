/**
 * @airlock/testkit: the test doubles airlock's tests share (one module per double, as sigstore-js's @sigstore/mock).
 * Every double is real where it can be: HTTP servers on 127.0.0.1 ephemeral ports, the real docker-registry
 * process, the real `npm pack`. Dev-only: workspaces list it in devDependencies, never in dependencies.
 */
export * from './oidc/fake-issuer.js';
export * from './upstream/upstream.js';
export * from './upstream/artifacts.js';
export * from './upstream/npm-registry.js';
export * from './registry/docker-registry.js';
export * from './bundle/bundle-reader.js';
export * from './tools/tools.js';
export * from './tools/ports.js';
export * from './git/fixture-repo.js';
export * from './sandbox/dirs.js';
export * from './pki/openssl-pki.js';
export * from './admission/world.js';
export * from './admission/reviews.js';
export * from './admission/malformed.js';
export * from './registry/counting-proxy.js';
export * from './registry/token-server.js';
export * from './tpm/swtpm.js';
export * from './admission/answer-gate.js';
export * from './postgres/postgres.js';
export * from './s3/radosgw.js';
export * from './nginx/static-server.js';
export * from './tlog/fake-witnesses.js';
export * from './pki/ct-issuer.js';
