/** A throwaway PKI made with the real openssl CLI, for TLS servers on 127.0.0.1 (registry, mirror). */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolProblem } from '../tools/tools.js';

export const opensslProblem = (): string | undefined => toolProblem('openssl', ['version']);

export interface TestPki {
  caFile: string;
  /** Server certificate and key: SAN IP:127.0.0.1, serverAuth. */
  certFile: string;
  keyFile: string;
  /** Client certificate and key (clientAuth), for mutual TLS. */
  clientCertFile: string;
  clientKeyFile: string;
}

/**
 * A CA, a server certificate for 127.0.0.1 and a client certificate, all P-256 and valid one day, written into `dir`
 * as ca.{crt,key}, server.{crt,key} and client.{crt,key}.
 */
export function makePki(dir: string): TestPki {
  const openssl = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=airlock test CA']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const who of ['server', 'client']) {
    openssl(['req', ...ec, '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`]);
    const sign = ['-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', `${who}.ext`];
    openssl(['x509', '-req', '-in', `${who}.csr`, ...sign, '-out', `${who}.crt`]);
  }
  const file = (name: string): string => join(dir, name);
  return {
    caFile: file('ca.crt'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    clientCertFile: file('client.crt'),
    clientKeyFile: file('client.key'),
  };
}
