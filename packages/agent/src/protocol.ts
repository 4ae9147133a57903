/**
 * The agent's wire protocol on its UNIX socket: one JSON request line, one JSON response line, then the agent
 * closes the connection. Who is asking is never part of the request: the agent learns it from the kernel.
 */
export interface AgentTokenRequest {
  /** The SPIFFE ID wanted; needed only when the caller matches entries for several IDs. */
  subject?: string;
  /** Token audience (default `sigstore`). */
  audience?: string;
  /** Shorter than the entry's lifetime if wanted; never longer. */
  ttlSeconds?: number;
  /**
   * Also quote the node's TPM for this build (issue 10 §4): the agent quotes with its attested AK over
   * buildQuoteNonce(invocationId, specDigest), which it computes itself, so a caller can never obtain a quote over
   * a nonce of its choosing (e.g. an issuer challenge). Answered only for a registered caller of an attested agent.
   */
  buildQuote?: { invocationId: string; specDigest: string };
}

export type AgentResponse =
  | { ok: true; token: string; spiffeId: string; expiresAt: string; buildQuote?: unknown }
  | { ok: false; error: { code: string; message: string } };

export const MAX_REQUEST_BYTES = 4096;
/** Tokens are ~1 KiB; anything much larger is not an agent answer. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
