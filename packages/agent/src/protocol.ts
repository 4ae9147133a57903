import type { X509SvidJson } from '@airlock/identity';

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
   * What to hand out: a JWT (`token`, the default) or an X.509 SVID (`x509-svid`). Additive: older callers that
   * send no kind keep getting tokens.
   */
  kind?: AgentRequestKind;
  /** x509-svid only: the workload's own public key (PEM SPKI); without it the agent generates the key pair. */
  publicKeyPem?: string;
  /**
   * Also quote the node's TPM for this build (issue 10 §4): the agent quotes with its attested AK over
   * buildQuoteNonce(invocationId, specDigest), which it computes itself, so a caller can never obtain a quote over
   * a nonce of its choosing (e.g. an issuer challenge). Answered only for a registered caller of an attested agent.
   */
  buildQuote?: { invocationId: string; specDigest: string };
}

export type AgentRequestKind = 'token' | 'x509-svid';

/** The SPIFFE Workload API's X509SVIDResponse as JSON: DER fields base64 (see X509SvidJson in @airlock/identity). */
export interface AgentX509SvidResponse {
  ok: true;
  kind: 'x509-svid';
  spiffeId: string;
  expiresAt: string;
  svids: X509SvidJson[];
}

export type AgentResponse =
  | { ok: true; token: string; spiffeId: string; expiresAt: string; buildQuote?: unknown }
  | AgentX509SvidResponse
  | { ok: false; error: { code: string; message: string } };

export const MAX_REQUEST_BYTES = 4096;
/** Tokens are ~1 KiB; anything much larger is not an agent answer. */
export const MAX_RESPONSE_BYTES = 64 * 1024;
