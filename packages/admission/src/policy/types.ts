/** The admission policy document (schemas/admission-policy.v1.schema.json). */
export interface AdmissionPolicyDocument {
  apiVersion: 'airlock.dev/admission-policy/v1';
  description?: string;
  unmatched?: 'deny' | 'allow';
  policies: ImagePolicyDocument[];
  toolchains?: { release: ReleaseRef };
}

/** A release policy (schemas/policy.v1.schema.json) by file or inline. */
export interface ReleaseRef {
  file?: string;
  inline?: Record<string, unknown>;
}

export interface ImagePolicyDocument {
  name: string;
  description?: string;
  images: string[];
  exclude?: string[];
  namespaces?: string[];
  mode?: 'enforce' | 'warn';
  release: ReleaseRef;
  vsa?: VsaFastPath;
}

export interface VsaFastPath {
  verifierIdentity: string;
  issuer: string;
  verifierId?: string;
  minimumLevel?: string;
  maxAge: string;
}
