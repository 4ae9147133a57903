import { AirlockError } from '@airlock/core';

export type VerifyErrorCode =
  | 'VERIFY_BUNDLE_MALFORMED'
  | 'VERIFY_BUNDLE_NONCANONICAL'
  | 'VERIFY_TRUSTED_ROOT'
  | 'VERIFY_SIGNATURE'
  | 'VERIFY_CERTIFICATE'
  | 'VERIFY_PUBLIC_KEY'
  | 'VERIFY_KEY_USAGE'
  | 'VERIFY_TIMESTAMP'
  | 'VERIFY_TLOG_MISSING'
  | 'VERIFY_TLOG_PROMISE'
  | 'VERIFY_TLOG_PROOF'
  | 'VERIFY_TLOG_BODY'
  | 'VERIFY_TLOG_WITNESS'
  | 'VERIFY_POLICY'
  | 'VERIFY_PAYLOAD_TYPE'
  | 'VERIFY_STATEMENT'
  | 'VERIFY_SUBJECT_MISMATCH'
  | 'VERIFY_ARTIFACT_REQUIRED'
  | 'VERIFY_MESSAGE_DIGEST';

export class VerifyError extends AirlockError<VerifyErrorCode> {}

/** @sigstore/verify error codes → ours, so callers see one vocabulary. */
const SIGSTORE_CODES: Record<string, VerifyErrorCode> = {
  SIGNATURE_ERROR: 'VERIFY_SIGNATURE',
  CERTIFICATE_ERROR: 'VERIFY_CERTIFICATE',
  PUBLIC_KEY_ERROR: 'VERIFY_PUBLIC_KEY',
  TIMESTAMP_ERROR: 'VERIFY_TIMESTAMP',
  TLOG_ERROR: 'VERIFY_TLOG_MISSING',
  TLOG_MISSING_INCLUSION_ERROR: 'VERIFY_TLOG_MISSING',
  TLOG_INCLUSION_PROMISE_ERROR: 'VERIFY_TLOG_PROMISE',
  TLOG_INCLUSION_PROOF_ERROR: 'VERIFY_TLOG_PROOF',
  TLOG_BODY_ERROR: 'VERIFY_TLOG_BODY',
  UNTRUSTED_SIGNER_ERROR: 'VERIFY_POLICY',
};

export function fromSigstoreError(err: unknown): VerifyError {
  if (err instanceof VerifyError) return err;
  const sigstoreCode = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  const code = (sigstoreCode && SIGSTORE_CODES[sigstoreCode]) || 'VERIFY_BUNDLE_MALFORMED';
  return new VerifyError(code, message, { cause: err, details: sigstoreCode ? { sigstoreCode } : undefined });
}
