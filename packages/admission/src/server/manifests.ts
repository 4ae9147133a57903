import { X509Certificate } from 'node:crypto';
import { stringify } from 'yaml';
import { AdmissionServerError } from './errors.js';

/**
 * The Kubernetes objects that install the webhook: Namespace, ServiceAccount, Deployment, Service and the
 * Validating/Mutating webhook configurations. Choices that matter for safety: failurePolicy Fail (a down webhook
 * admits nothing), sideEffects None, a timeout above the server's internal deadline, the webhook's own namespace
 * and kube-system excluded (so the webhook can always start), `pods/ephemeralcontainers` listed explicitly (a
 * `pods` rule does not match the subresource), and every workload kind that carries a pod template.
 */

export interface ManifestOptions {
  namespace: string;
  /** The airlock image the Deployment runs. */
  image: string;
  /** PEM of the CA that signed the webhook's serving certificate; without it, cert-manager must inject one. */
  caBundlePem?: string;
  /** The webhook timeout the API server applies, 1-30 s (default 10). */
  timeoutSeconds?: number;
  /** Name of every object (default airlock-admission). */
  name?: string;
  replicas?: number;
}

export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string } & Record<string, unknown>;
};

/** Resources the webhooks see, by API group; CREATE and UPDATE only (DELETE/CONNECT are never blocked). */
export const WEBHOOK_RULES = [
  {
    apiGroups: [''],
    apiVersions: ['v1'],
    operations: ['CREATE', 'UPDATE'],
    resources: ['pods', 'pods/ephemeralcontainers', 'replicationcontrollers', 'podtemplates'],
    scope: '*',
  },
  {
    apiGroups: ['apps'],
    apiVersions: ['v1'],
    operations: ['CREATE', 'UPDATE'],
    resources: ['deployments', 'replicasets', 'statefulsets', 'daemonsets'],
    scope: 'Namespaced',
  },
  {
    apiGroups: ['batch'],
    apiVersions: ['v1'],
    operations: ['CREATE', 'UPDATE'],
    resources: ['jobs', 'cronjobs'],
    scope: 'Namespaced',
  },
] as const;

const PORT = 8443;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** The server's internal deadline for a webhook timeout: 80% of it, so the API server never times out first. */
export function deadlineForTimeout(timeoutSeconds: number): number {
  return Math.floor(timeoutSeconds * 800);
}

export function renderManifests(options: ManifestOptions): KubeObject[] {
  const name = options.name ?? 'airlock-admission';
  const ns = options.namespace;
  if (!DNS_LABEL.test(ns)) throw invalid(`namespace '${ns}' is not a DNS label`);
  if (!DNS_LABEL.test(name)) throw invalid(`name '${name}' is not a DNS label`);
  if (ns === 'kube-system') throw invalid('install the webhook in its own namespace, not kube-system');
  if (options.image.trim() === '' || /\s/.test(options.image)) throw invalid('--image must be an image reference');
  const timeoutSeconds = options.timeoutSeconds ?? 10;
  if (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 2 || timeoutSeconds > 30)
    throw invalid('--timeout must be a whole number of seconds from 2 to 30 (the API server allows at most 30)');
  const caBundle = options.caBundlePem === undefined ? undefined : caBundleOf(options.caBundlePem);
  const labels = { 'app.kubernetes.io/name': name, 'app.kubernetes.io/part-of': 'airlock' };
  const meta = (extra: Record<string, unknown> = {}) => ({ name, namespace: ns, labels, ...extra });
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(), automountServiceAccountToken: false },
    deployment(name, ns, labels, options.image, options.replicas ?? 2, timeoutSeconds),
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(),
      spec: { selector: labels, ports: [{ name: 'https', port: 443, targetPort: PORT, protocol: 'TCP' }] },
    },
    webhookConfiguration('ValidatingWebhookConfiguration', name, ns, labels, caBundle, timeoutSeconds),
    webhookConfiguration('MutatingWebhookConfiguration', name, ns, labels, caBundle, timeoutSeconds),
  ];
}

function invalid(message: string): AdmissionServerError {
  return new AdmissionServerError('ADMISSION_SERVER_OPTIONS_INVALID', message);
}

/** Base64 of the PEM, after checking every certificate in it parses. */
function caBundleOf(pem: string): string {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw invalid('the CA bundle holds no PEM certificate');
  for (const b of blocks) {
    try {
      new X509Certificate(b);
    } catch (err) {
      throw invalid(`the CA bundle holds a certificate that does not parse: ${(err as Error).message}`);
    }
  }
  return Buffer.from(`${blocks.join('\n')}\n`).toString('base64');
}

function deployment(
  name: string,
  ns: string,
  labels: Record<string, string>,
  image: string,
  replicas: number,
  timeoutSeconds: number,
): KubeObject {
  const probe = (path: string) => ({
    httpGet: { path, port: PORT, scheme: 'HTTPS' },
    periodSeconds: 10,
    timeoutSeconds: 2,
  });
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns, labels },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: name,
          automountServiceAccountToken: false,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'admission',
              image,
              args: [
                ...['admission', 'serve', '--host', '0.0.0.0', '--port', String(PORT)],
                ...['--policy', '/etc/airlock/policy/admission-policy.yaml'],
                ...['--trusted-root', '/etc/airlock/policy/trusted_root.json'],
                ...['--registry-config', '/etc/airlock/policy/registries.yaml'],
                ...['--tls-cert', '/etc/airlock/tls/tls.crt', '--tls-key', '/etc/airlock/tls/tls.key'],
                ...['--deadline', `${deadlineForTimeout(timeoutSeconds)}ms`],
              ],
              ports: [{ name: 'https', containerPort: PORT, protocol: 'TCP' }],
              readinessProbe: probe('/readyz'),
              livenessProbe: probe('/healthz'),
              resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } },
              securityContext: {
                allowPrivilegeEscalation: false,
                readOnlyRootFilesystem: true,
                capabilities: { drop: ['ALL'] },
              },
              volumeMounts: [
                { name: 'policy', mountPath: '/etc/airlock/policy', readOnly: true },
                { name: 'tls', mountPath: '/etc/airlock/tls', readOnly: true },
              ],
            },
          ],
          volumes: [
            // The operator creates these: the policy, trusted root and registries file; the serving certificate.
            { name: 'policy', configMap: { name: `${name}-policy` } },
            { name: 'tls', secret: { secretName: `${name}-tls` } },
          ],
        },
      },
    },
  };
}

function webhookConfiguration(
  kind: 'ValidatingWebhookConfiguration' | 'MutatingWebhookConfiguration',
  name: string,
  ns: string,
  labels: Record<string, string>,
  caBundle: string | undefined,
  timeoutSeconds: number,
): KubeObject {
  const mutating = kind === 'MutatingWebhookConfiguration';
  const webhook: Record<string, unknown> = {
    // The API server prefixes audit annotation keys with this name: `validate.airlock.dev/verdict`.
    name: mutating ? 'mutate.airlock.dev' : 'validate.airlock.dev',
    admissionReviewVersions: ['v1'],
    clientConfig: {
      service: { namespace: ns, name, path: mutating ? '/mutate' : '/validate', port: 443 },
      ...(caBundle ? { caBundle } : {}),
    },
    rules: WEBHOOK_RULES.map((r) => ({
      ...r,
      apiGroups: [...r.apiGroups],
      apiVersions: [...r.apiVersions],
      operations: [...r.operations],
      resources: [...r.resources],
    })),
    failurePolicy: 'Fail',
    // Equivalent: a workload sent through another API version is still checked.
    matchPolicy: 'Equivalent',
    sideEffects: 'None',
    timeoutSeconds,
    namespaceSelector: {
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [ns, 'kube-system'] }],
    },
    // Images another mutating webhook adds after ours are pinned too.
    ...(mutating ? { reinvocationPolicy: 'IfNeeded' } : {}),
  };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind,
    metadata: {
      name,
      labels,
      // Without --ca-bundle, cert-manager's CA injector fills caBundle from the Certificate named here.
      ...(caBundle ? {} : { annotations: { 'cert-manager.io/inject-ca-from': `${ns}/${name}` } }),
    },
    webhooks: [webhook],
  };
}

/** A multi-document YAML stream, one object per document. */
export function manifestsYaml(objects: readonly KubeObject[]): string {
  return objects.map((o) => `---\n${stringify(o, { lineWidth: 0, aliasDuplicateObjects: false })}`).join('');
}
