import type { Statement } from '@airlock/core';
import { RunnerError } from './errors.js';

/** The signing port: anything that turns an in-toto statement into a Sigstore bundle (e.g. @airlock/sign's AirlockSigner). */
export interface AttestationSigner {
  attest(statement: Statement): Promise<unknown>;
  /** Signs raw bytes (a message-signature bundle); needed for the cosign signature of an OCI image output. */
  signBlob?(bytes: Buffer): Promise<unknown>;
}

/** Signs one statement; any failure (or a non-object answer) is RUNNER_SIGNING_FAILED naming what was signed. */
export function signStatement(signer: AttestationSigner, statement: Statement, what: string): Promise<unknown> {
  return signWith(what, () => signer.attest(statement));
}

/** Runs one signing call; any failure (or a non-object answer) is RUNNER_SIGNING_FAILED naming what was signed. */
export async function signWith(what: string, sign: () => Promise<unknown>): Promise<Record<string, unknown>> {
  let bundle: unknown;
  try {
    bundle = await sign();
  } catch (cause) {
    const code = (cause as { code?: unknown }).code;
    throw new RunnerError(
      'RUNNER_SIGNING_FAILED',
      `signing the ${what} failed${typeof code === 'string' ? ` [${code}]` : ''}: ${(cause as Error).message}`,
      { cause },
    );
  }
  if (typeof bundle !== 'object' || bundle === null)
    throw new RunnerError('RUNNER_SIGNING_FAILED', `signing the ${what} returned no bundle`);
  return bundle as Record<string, unknown>;
}
