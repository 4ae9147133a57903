import { AirlockError } from '@airlock/core';

/** Stable codes of the admission HTTP server (the envelope, the body, TLS). The decision logic has its own. */
export type AdmissionServerErrorCode =
  | 'ADMISSION_BAD_REQUEST' // 400: not JSON, not an AdmissionReview v1, no request.uid
  | 'ADMISSION_BODY_TOO_LARGE' // 413
  | 'ADMISSION_BODY_TIMEOUT' // 408
  | 'ADMISSION_NOT_FOUND' // 404
  | 'ADMISSION_METHOD_NOT_ALLOWED' // 405
  | 'ADMISSION_OVERLOADED' // 503
  | 'ADMISSION_DEADLINE_EXCEEDED' // the controller did not answer in time: a deny
  | 'ADMISSION_INTERNAL' // the controller threw or answered nonsense: a deny
  | 'ADMISSION_TLS_INVALID' // a certificate/key pair that does not load
  | 'ADMISSION_SERVER_OPTIONS_INVALID';

export class AdmissionServerError extends AirlockError<AdmissionServerErrorCode> {}
