import { AirlockError } from '@airlock/core';

export type SignErrorCode =
  | 'SIGN_IDENTITY_TOKEN'
  | 'SIGN_CERTIFICATE'
  | 'SIGN_TLOG'
  | 'SIGN_TIMESTAMP' // the timestamp authority refused or failed
  | 'SIGN_KEY_UNSUPPORTED'
  | 'SIGN_FAILED';

export class SignError extends AirlockError<SignErrorCode> {}
