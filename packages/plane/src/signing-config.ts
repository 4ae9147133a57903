/**
 * Sigstore signing config v0.2 (protobuf-specs `sigstore_trustroot.proto` SigningConfig, proto3 JSON mapping):
 * where a stock client finds the plane's CA, OIDC issuer, transparency logs and timestamp authority.
 */
export const SIGNING_CONFIG_MEDIA_TYPE = 'application/vnd.dev.sigstore.signingconfig.v0.2+json';
export const SIGNING_CONFIG_FILE = 'signing_config.json';

export interface SigningConfigService {
  url: string;
  majorApiVersion: number;
  validFor: { start: string; end?: string };
  operator: string;
}

export type ServiceSelector = 'ALL' | 'ANY' | 'EXACT';

export interface SigningConfigJson {
  mediaType: string;
  caUrls: SigningConfigService[];
  oidcUrls: SigningConfigService[];
  rekorTlogUrls: SigningConfigService[];
  rekorTlogConfig: { selector: ServiceSelector; count?: number };
  tsaUrls: SigningConfigService[];
  tsaConfig: { selector: ServiceSelector; count?: number };
}

/** One service of the plane: its URL, API major version (default 1) and since when it is valid. */
export interface SigningConfigEntry {
  url: string;
  majorApiVersion?: number;
  validFrom: Date;
}

export interface SigningConfigInput {
  ca: SigningConfigEntry;
  /** The TSA's base URL; the config names the full `/api/v1/timestamp` endpoint as the spec requires. */
  tsa: SigningConfigEntry;
  /** Transparency logs (a Rekor v1 log, a Rekor v2 log, …): one entry each, newest API first is not required. */
  tlogs: SigningConfigEntry[];
  /** The OIDC issuer clients may get tokens from (the embedded workload-identity issuer). */
  oidc?: SigningConfigEntry;
  operator?: string;
}

/**
 * Builds the signing config. Logs are selected with ANY (a client signs with one log it supports, as for the
 * public-good instance); the TSA likewise. Services are sorted newest `validFor.start` first, as the spec asks.
 */
export function buildSigningConfig(input: SigningConfigInput): SigningConfigJson {
  const operator = input.operator ?? 'airlock';
  const service = (e: SigningConfigEntry, url = e.url): SigningConfigService => ({
    url,
    majorApiVersion: e.majorApiVersion ?? 1,
    validFor: { start: e.validFrom.toISOString() },
    operator,
  });
  const newestFirst = (a: SigningConfigService, b: SigningConfigService): number =>
    Date.parse(b.validFor.start) - Date.parse(a.validFor.start) || b.majorApiVersion - a.majorApiVersion;
  return {
    mediaType: SIGNING_CONFIG_MEDIA_TYPE,
    caUrls: [service(input.ca)],
    oidcUrls: input.oidc ? [service(input.oidc)] : [],
    rekorTlogUrls: input.tlogs.map((t) => service(t)).sort(newestFirst),
    rekorTlogConfig: { selector: 'ANY' },
    tsaUrls: [service(input.tsa, `${input.tsa.url.replace(/\/+$/, '')}/api/v1/timestamp`)],
    tsaConfig: { selector: 'ANY' },
  };
}
