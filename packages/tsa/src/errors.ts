import { AirlockError } from '@airlock/core';

export type TsaErrorCode =
  | 'TSA_KEY_PERMISSIONS' // the TSA key file is readable by others or not ours
  | 'TSA_KEY_INVALID' // the key or chain files are unreadable or do not belong together
  | 'TSA_REQUEST_INVALID' // 400: malformed JSON or DER TimeStampReq
  | 'TSA_HASH_ALGORITHM' // 400: unknown or weak hash algorithm (SHA-1, MD5)
  | 'TSA_UNSUPPORTED_MEDIA_TYPE'; // 415: neither application/json nor application/timestamp-query

export class TsaError extends AirlockError<TsaErrorCode> {}
