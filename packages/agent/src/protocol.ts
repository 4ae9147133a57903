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
}

export type AgentResponse =
  | { ok: true; token: string; spiffeId: string; expiresAt: string }
  | { ok: false; error: { code: string; message: string } };

export const MAX_REQUEST_BYTES = 4096;
/** Tokens are ~1 KiB; anything much larger is not an agent answer. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
