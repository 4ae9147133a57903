import { AirlockError } from '@airlock/core';

/** Failure codes of the CA. Token refusals keep the identity package's `OIDC_*` codes (HTTP 401). */
export type CaErrorCode =
  | 'CA_CONFIG_INVALID'
  | 'CA_KEY_INVALID'
  | 'CA_KEY_PERMISSIONS' // a CA private key file is group/world-readable or not owned by the CA's user
  | 'CA_REQUEST_INVALID'
  | 'CA_UNSUPPORTED_KEY'
  | 'CA_POP_INVALID'
  | 'CA_CSR_INVALID'
  | 'CA_CLAIM_INVALID'
  | 'CA_CLAIM_UNTRUSTED' // the token's issuer is not trusted to assert this claim (node attestation)
  | 'CA_NOT_VALID_NOW'
  | 'SVID_REQUEST_INVALID';

export class CaError extends AirlockError<CaErrorCode> {}
