import { IdentityError } from './errors.js';
import { parseSpiffeId } from './spiffe.js';
import type { TrustedIssuer } from './trusted-issuer.js';

/**
 * What a verified token proves, in Fulcio's terms (`principal.Name()` / `principal.Embed()`,
 * https://github.com/sigstore/fulcio/tree/main/pkg/identity): `name` is the string the client must sign as proof
 * of possession; `san` is the single Subject Alternative Name the certificate carries.
 */
export interface OidcPrincipal {
  issuerUrl: string;
  name: string;
  san: SubjectAltName;
}

export type SubjectAltName = { type: 'uri'; value: string } | { type: 'email'; value: string };

const KUBERNETES_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
// SAN values are IA5String: printable ASCII, and no spaces in URIs or mailboxes.
const SAN_SAFE_RE = /^[\x21-\x7e]+$/;

/**
 * Derives the principal from already signature-checked claims. Throws `OIDC_BAD_SUBJECT` (or
 * `OIDC_EMAIL_UNVERIFIED`) naming the claim that does not fit the issuer's type.
 */
export function principalFromClaims(issuer: TrustedIssuer, claims: Readonly<Record<string, unknown>>): OidcPrincipal {
  const sub = claims.sub;
  const badSubject = (why: string): IdentityError =>
    new IdentityError('OIDC_BAD_SUBJECT', `token from ${issuer.issuerUrl}: ${why}`);
  switch (issuer.type) {
    case 'spiffe': {
      let id;
      try {
        id = parseSpiffeId(sub);
      } catch (err) {
        throw new IdentityError(
          'OIDC_BAD_SUBJECT',
          `token from ${issuer.issuerUrl}: sub is not a SPIFFE ID: ${(err as Error).message}`,
          { cause: err },
        );
      }
      if (id.trustDomain !== issuer.trustDomain) {
        throw badSubject(`sub ${id.id} is outside trust domain ${JSON.stringify(issuer.trustDomain)}`);
      }
      return { issuerUrl: issuer.issuerUrl, name: id.id, san: { type: 'uri', value: id.id } };
    }
    case 'email': {
      const email = claims.email;
      if (typeof email !== 'string' || !isMailbox(email))
        throw badSubject('email claim is missing or not an ASCII mailbox');
      // Strictly boolean true, as Fulcio does: a string "true" is not a verification.
      if (claims.email_verified !== true) {
        throw new IdentityError(
          'OIDC_EMAIL_UNVERIFIED',
          `token from ${issuer.issuerUrl}: email ${email} is not verified (email_verified must be true)`,
        );
      }
      return { issuerUrl: issuer.issuerUrl, name: email, san: { type: 'email', value: email } };
    }
    case 'kubernetes': {
      if (typeof sub !== 'string' || sub.length === 0 || sub.length > 1024) throw badSubject('sub claim is missing');
      const k8s = claims['kubernetes.io'];
      const ns = isRecord(k8s) ? k8s.namespace : undefined;
      const sa = isRecord(k8s) && isRecord(k8s.serviceaccount) ? k8s.serviceaccount.name : undefined;
      if (typeof ns !== 'string' || ns.length > 63 || !KUBERNETES_LABEL_RE.test(ns)) {
        throw badSubject('kubernetes.io.namespace is missing or not a DNS-1123 label');
      }
      if (
        typeof sa !== 'string' ||
        sa.length > 253 ||
        !sa.split('.').every((l) => l.length <= 63 && KUBERNETES_LABEL_RE.test(l))
      ) {
        throw badSubject('kubernetes.io.serviceaccount.name is missing or not a DNS-1123 subdomain');
      }
      return {
        issuerUrl: issuer.issuerUrl,
        name: sub,
        san: { type: 'uri', value: `https://kubernetes.io/namespaces/${ns}/serviceaccounts/${sa}` },
      };
    }
    case 'uri': {
      if (typeof sub !== 'string' || sub.length === 0 || sub.length > 2048 || !SAN_SAFE_RE.test(sub)) {
        throw badSubject('sub must be a URI of printable ASCII');
      }
      if (isMailbox(sub) && !sub.includes('://')) throw badSubject('sub must be a URI, not an email address');
      let subject: URL;
      let domain: URL;
      try {
        subject = new URL(sub);
        domain = new URL(issuer.subjectDomain ?? '');
      } catch {
        throw badSubject(`sub ${JSON.stringify(sub)} is not a URI`);
      }
      if (subject.protocol !== domain.protocol) {
        throw badSubject(`sub scheme ${subject.protocol} must match the subject domain scheme ${domain.protocol}`);
      }
      if (subject.hostname !== domain.hostname) {
        throw badSubject(`sub host ${subject.hostname} must match the subject domain host ${domain.hostname}`);
      }
      return { issuerUrl: issuer.issuerUrl, name: sub, san: { type: 'uri', value: sub } };
    }
    default: {
      const never: never = issuer.type;
      throw badSubject(`unsupported issuer type ${String(never)}`);
    }
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isMailbox(s: string): boolean {
  if (s.length > 254 || !SAN_SAFE_RE.test(s)) return false;
  const at = s.lastIndexOf('@');
  if (at < 1 || at !== s.indexOf('@')) return false;
  const local = s.slice(0, at);
  const domain = s.slice(at + 1);
  return local.length <= 64 && /^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/.test(domain);
}
