/**
 * The seam between the admission HTTP server (`src/server/`) and the decision logic (`src/review/`): the server
 * parses and bounds the HTTP request, checks the AdmissionReview envelope, enforces the deadline and records
 * metrics; the controller decides. Shapes follow admission.k8s.io/v1 (AdmissionReview, AdmissionRequest,
 * AdmissionResponse).
 */

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

/** admission.k8s.io/v1 AdmissionRequest (the fields airlock reads; the rest is carried as unknown). */
export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  requestKind?: GroupVersionKind;
  requestResource?: GroupVersionResource;
  requestSubResource?: string;
  name?: string;
  namespace?: string;
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  userInfo?: { username?: string; uid?: string; groups?: string[] };
  object?: unknown;
  oldObject?: unknown;
  dryRun?: boolean;
  options?: unknown;
}

/** admission.k8s.io/v1 AdmissionResponse. `patch` is base64 of a JSONPatch document. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code?: number; message?: string; reason?: string };
  warnings?: string[];
  patchType?: 'JSONPatch';
  patch?: string;
  auditAnnotations?: Record<string, string>;
}

export interface AdmissionReview {
  apiVersion: 'admission.k8s.io/v1';
  kind: 'AdmissionReview';
  request?: AdmissionRequest;
  response?: AdmissionResponse;
}

/** What the server tells the controller about one call. */
export interface DecideOptions {
  /** true for POST /mutate: pin every image to repo@sha256:… with a JSONPatch. */
  mutate: boolean;
  /** Aborted at the internal deadline (below the webhook timeout); the controller stops registry work. */
  signal: AbortSignal;
}

/** One-method interface the server calls for /validate and /mutate. */
export interface AdmissionDecider {
  decide(request: AdmissionRequest, options: DecideOptions): Promise<AdmissionResponse>;
}

/** POST /workspace and `airlock admit workspace`: a dev environment's pre-start check. */
export interface WorkspaceRequest {
  image: string;
  /** Toolchain files (compiler, SDK tarball) with their bundles, by path on the checking host. */
  toolchains?: { path: string; bundles?: string[] }[];
}

export interface WorkspaceVerdict {
  allowed: boolean;
  /** One line: why allowed or refused, naming the image/toolchain and the failing rule. */
  reason: string;
  image: { reference: string; digest?: string; policy?: string; verdict: 'PASS' | 'FAIL' | 'ERROR' };
  toolchains: { path: string; sha256?: string; verdict: 'PASS' | 'FAIL' | 'ERROR'; reason?: string }[];
}

export interface WorkspaceChecker {
  checkWorkspace(request: WorkspaceRequest, options: { signal: AbortSignal }): Promise<WorkspaceVerdict>;
}

/** Events the controller reports for /metrics (the server owns the counters). */
export interface AdmissionEvents {
  cache(hit: boolean): void;
  registryError(host: string): void;
  /** A verification actually ran (not a cache hit, not a request joining one in flight). */
  verification?(): void;
  /** A tag lookup was sent to a registry (requests sharing it count once). */
  tagLookup?(): void;
}

/** Readiness for /readyz: the policy and the trusted root are loaded. */
export interface Readiness {
  ready(): { ok: boolean; reason?: string };
}

export interface AdmissionController extends AdmissionDecider, WorkspaceChecker, Readiness {
  /** Stops file watchers and drops the cache. */
  close(): Promise<void>;
}
