/**
 * Typed errors with stable, machine-readable codes (the sigstore-js `BaseError<T>` idea): callers switch on
 * `code`, humans read `message`, and `cause` keeps the underlying failure.
 */
export class AirlockError<Code extends string = string> extends Error {
  readonly code: Code;
  readonly details?: Record<string, unknown>;

  constructor(code: Code, message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.details) this.details = options.details;
  }

  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      ...(this.details ? { details: this.details } : {}),
    };
  }
}

export type CoreErrorCode =
  | 'DIGEST_UNSUPPORTED_ALGORITHM'
  | 'DIGEST_MALFORMED'
  | 'DIGEST_MISMATCH'
  | 'CANONICAL_JSON_UNSUPPORTED'
  | 'DSSE_MALFORMED'
  | 'DSSE_PAYLOAD_TYPE_MISMATCH'
  | 'DSSE_SIGNATURE_INVALID'
  | 'INTOTO_STATEMENT_INVALID'
  | 'INTOTO_SUBJECT_MISMATCH';

export class CoreError extends AirlockError<CoreErrorCode> {}

/** True when `err` is an AirlockError carrying `code` (works across package copies, unlike instanceof). */
export function hasErrorCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
