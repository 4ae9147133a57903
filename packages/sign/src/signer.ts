import { createHash } from 'node:crypto';
import {
  DSSEBundleBuilder,
  FulcioSigner,
  MessageSignatureBundleBuilder,
  RekorWitness,
  TSAWitness,
  type Artifact,
  type Bundle,
  type IdentityProvider,
  type Signature,
  type Signer,
  type Witness,
} from '@sigstore/sign';
import {
  bundleToJSON,
  toMessageSignatureBundle,
  type BundleWithMessageSignature,
  type SerializedBundle,
} from '@sigstore/bundle';
import { INTOTO_PAYLOAD_TYPE, validateStatement, type Statement } from '@airlock/core';
import { SignError } from './errors.js';

export type { SerializedBundle } from '@sigstore/bundle';

/** Where to sign: the internal (or any Fulcio v2 / Rekor v1 compatible) CA and log, and the timestamp authority. */
export interface SigningEndpoints {
  fulcioUrl: string;
  rekorUrl: string;
  /**
   * RFC 3161 timestamp authority (sigstore/timestamp-authority API, base URL). When given, every bundle carries a
   * signed timestamp over its signature besides the log's integrated time.
   */
  tsaUrl?: string;
}

export interface AirlockSignerOptions extends SigningEndpoints {
  /** Where the OIDC token comes from: a provider, a function, or a fixed token string. */
  identity?: IdentityProvider | (() => Promise<string>) | string;
  /** Sign with this key instead of a Fulcio certificate (then `identity` is not needed). */
  keySigner?: Signer;
  /** Per-request HTTP timeout (ms). */
  timeoutMs?: number;
  /** Skip the transparency log (not recommended: nothing then proves when the signature was made). */
  skipTlog?: boolean;
}

function toIdentityProvider(identity: AirlockSignerOptions['identity']): IdentityProvider {
  if (identity === undefined) throw new SignError('SIGN_IDENTITY_TOKEN', 'no identity token source given');
  if (typeof identity === 'string') return { getToken: async () => identity };
  if (typeof identity === 'function') return { getToken: identity };
  return identity;
}

/**
 * @sigstore/sign@4's MessageSignatureBundleBuilder hard-codes `certificateChain: true` and so emits v0.2
 * bundles; airlock standardises on v0.3 (`certificate` = leaf only, chain from the trusted root).
 */
class MessageSignatureV03BundleBuilder extends MessageSignatureBundleBuilder {
  protected override async package(artifact: Artifact, signature: Signature): Promise<BundleWithMessageSignature> {
    return toMessageSignatureBundle({
      digest: createHash('sha256').update(artifact.data).digest(),
      signature: signature.signature,
      certificate: signature.key.$case === 'x509Certificate' ? pemToDer(signature.key.certificate) : undefined,
      keyHint: signature.key.$case === 'publicKey' ? signature.key.hint : undefined,
      certificateChain: false,
    });
  }
}

function pemToDer(pem: string): Buffer {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  return Buffer.from(body, 'base64');
}

/**
 * Signs blobs (message signatures) and in-toto statements (DSSE) through a Fulcio-compatible CA and a Rekor
 * v1-compatible log using the stock @sigstore/sign building blocks. Output: Sigstore bundle v0.3 JSON.
 */
export class AirlockSigner {
  private readonly signer: Signer;
  private readonly witnesses: Witness[];

  constructor(options: AirlockSignerOptions) {
    const timeout = options.timeoutMs ?? 30_000;
    this.signer =
      options.keySigner ??
      new FulcioSigner({
        fulcioBaseURL: options.fulcioUrl,
        identityProvider: toIdentityProvider(options.identity),
        timeout,
      });
    this.witnesses = options.skipTlog
      ? []
      : [new RekorWitness({ rekorBaseURL: options.rekorUrl, entryType: 'dsse', fetchOnConflict: true, timeout })];
    if (options.tsaUrl) this.witnesses.push(new TSAWitness({ tsaBaseURL: options.tsaUrl, timeout }));
  }

  /** Signs raw bytes; the bundle holds a `messageSignature` over their SHA-256. */
  async signBlob(data: Buffer): Promise<SerializedBundle> {
    const builder = new MessageSignatureV03BundleBuilder({ signer: this.signer, witnesses: this.witnesses });
    return bundleToJSON(await this.run(() => builder.create({ data })));
  }

  /** Signs an in-toto Statement v1 as a DSSE envelope (`application/vnd.in-toto+json`). */
  async attest(statement: Statement): Promise<SerializedBundle> {
    validateStatement(statement);
    return this.signEnvelope(Buffer.from(JSON.stringify(statement), 'utf8'), INTOTO_PAYLOAD_TYPE);
  }

  /** Signs any payload as DSSE with the given payload type. */
  async signEnvelope(payload: Buffer, payloadType: string): Promise<SerializedBundle> {
    const builder = new DSSEBundleBuilder({ signer: this.signer, witnesses: this.witnesses });
    return bundleToJSON(await this.run(() => builder.create({ data: payload, type: payloadType })));
  }

  private async run(create: () => Promise<Bundle>): Promise<Bundle> {
    try {
      return await create();
    } catch (cause) {
      throw classifySigningFailure(cause);
    }
  }
}

/** Maps @sigstore/sign's InternalError codes onto ours, keeping the cause for detail. */
function classifySigningFailure(cause: unknown): SignError {
  const code = (cause as { code?: string }).code ?? '';
  const message = cause instanceof Error ? cause.message : String(cause);
  const inner = (cause as { cause?: unknown }).cause;
  const detail = inner instanceof Error ? `: ${inner.message}` : '';
  if (code.startsWith('IDENTITY_TOKEN'))
    return new SignError('SIGN_IDENTITY_TOKEN', `identity token: ${message}${detail}`, { cause });
  if (code.startsWith('CA_'))
    return new SignError('SIGN_CERTIFICATE', `certificate authority refused or failed: ${message}${detail}`, { cause });
  if (code.startsWith('TLOG_'))
    return new SignError('SIGN_TLOG', `transparency log refused or failed: ${message}${detail}`, { cause });
  if (code.startsWith('TSA_'))
    return new SignError('SIGN_TIMESTAMP', `timestamp authority refused or failed: ${message}${detail}`, { cause });
  return new SignError('SIGN_FAILED', `signing failed: ${message}${detail}`, { cause });
}
