#!/usr/bin/env node
// The admission webhook in its own process for the bench's variants the CLI has no flag for (today: the
// verification cache off but by-digest registry reads kept, "cold verification, immutable-blob cache"). It is
// what `airlock admission serve` runs: createAdmissionController + startAdmissionServer, same defaults.
//
//   node lib-admission-server.mjs '<json>'   { policy, trustedRoot, registries, certFile, keyFile, cache: bool,
//                                             immutableReadBytes?: number }
// Prints {"url": ...} on stdout when listening; stops on SIGTERM/SIGINT.
import {
  AdmissionMetrics,
  createAdmissionController,
  startAdmissionServer,
} from '../../packages/admission/dist/index.js';

const c = JSON.parse(process.argv[2]);
const metrics = new AdmissionMetrics();
const controller = createAdmissionController({
  policyFile: c.policy,
  trustedRoots: [c.trustedRoot],
  registries: { file: c.registries },
  cache: c.cache ? {} : false,
  ...(c.immutableReadBytes !== undefined ? { immutableReads: { maxBytes: c.immutableReadBytes } } : {}),
  events: metrics,
});
const server = await startAdmissionServer({
  controller,
  metrics,
  tls: { certFile: c.certFile, keyFile: c.keyFile },
  host: '127.0.0.1',
  port: 0,
});
process.stdout.write(`${JSON.stringify({ url: server.url })}\n`);
const stop = async () => {
  await server.close();
  await controller.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
