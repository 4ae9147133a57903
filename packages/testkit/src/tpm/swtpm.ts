/**
 * A real software TPM (swtpm 0.7, Debian 12) on a UNIX socket, manufactured with swtpm_setup: RSA-2048 EK at
 * 0x81010001 with its certificate in NV 0x1c00002, ECC P-384 EK at 0x81010016 (certificate in 0x1c00016), both
 * certified by swtpm_localca's CA in `localCaDir` (share one to model "same manufacturer").
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { which } from '../tools/tools.js';

export function swtpmProblem(): string | undefined {
  const missing = [
    'swtpm',
    'swtpm_setup',
    'swtpm_localca',
    'tpm2_quote',
    'tpm2_activatecredential',
    'tpm2_createak',
  ].filter((t) => !which(t));
  return missing.length > 0
    ? `${missing.join(', ')} not installed (apt-get install swtpm swtpm-tools tpm2-tools)`
    : undefined;
}

export interface Swtpm {
  /** TCTI string for tpm2-tools (TPM2TOOLS_TCTI). */
  tcti: string;
  /** The local CA's root and issuer (intermediate) certificates, PEM. */
  rootCaPem: string;
  issuerCaPem: string;
  stateDir: string;
  stop(): Promise<void>;
}

/** Manufactures a TPM in `dir` (state, configs) and serves it on `dir`/sock; the caller must stop() it. */
export async function startSwtpm(dir: string, opts: { localCaDir?: string } = {}): Promise<Swtpm> {
  const ca = opts.localCaDir ?? join(dir, 'localca');
  const state = join(dir, 'state');
  mkdirSync(ca, { recursive: true });
  mkdirSync(state, { recursive: true });
  writeFileSync(
    join(dir, 'swtpm-localca.conf'),
    `statedir = ${ca}\nsigningkey = ${ca}/signkey.pem\nissuercert = ${ca}/issuercert.pem\ncertserial = ${ca}/certserial\n`,
  );
  writeFileSync(
    join(dir, 'swtpm-localca.options'),
    '--platform-manufacturer airlock\n--platform-version 2.1\n--platform-model test\n',
  );
  writeFileSync(
    join(dir, 'swtpm_setup.conf'),
    `create_certs_tool = /usr/bin/swtpm_localca\ncreate_certs_tool_config = ${dir}/swtpm-localca.conf\ncreate_certs_tool_options = ${dir}/swtpm-localca.options\nactive_pcr_banks = sha256\n`,
  );
  const setup = spawnSync(
    'swtpm_setup',
    [
      '--tpm2',
      '--tpmstate',
      state,
      '--config',
      join(dir, 'swtpm_setup.conf'),
      '--create-ek-cert',
      '--create-platform-cert',
      '--lock-nvram',
      '--overwrite',
    ],
    { encoding: 'utf8' },
  );
  if (setup.status !== 0) throw new Error(`swtpm_setup failed: ${setup.stderr || setup.stdout}`);
  const sock = join(dir, 'sock');
  // tpm2-tss's swtpm TCTI finds the control channel at <path>.ctrl.
  const child: ChildProcess = spawn(
    'swtpm',
    [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${state}`,
      '--server',
      `type=unixio,path=${sock}`,
      '--ctrl',
      `type=unixio,path=${sock}.ctrl`,
      '--flags',
      'not-need-init,startup-clear',
      '--log',
      `file=${join(dir, 'swtpm.log')},level=1`,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 200 && !(existsSync(sock) && existsSync(`${sock}.ctrl`)); i++) {
    if (child.exitCode !== null) throw new Error(`swtpm exited with ${child.exitCode}: see ${join(dir, 'swtpm.log')}`);
    await sleep(25);
  }
  if (!existsSync(sock)) {
    child.kill('SIGKILL');
    throw new Error('swtpm did not create its socket within 5 s');
  }
  return {
    tcti: `swtpm:path=${sock}`,
    rootCaPem: readFileSync(join(ca, 'swtpm-localca-rootca-cert.pem'), 'utf8'),
    issuerCaPem: readFileSync(join(ca, 'issuercert.pem'), 'utf8'),
    stateDir: state,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
