/**
 * `renderManifests` (behind `airlock admission manifests`): every object validated against the upstream Kubernetes
 * OpenAPI definitions with kubernetes-models 4.5.1, and the safety-relevant fields asserted: failurePolicy Fail,
 * sideEffects None, the timeout above the server's deadline, the webhook's own namespace and kube-system excluded,
 * pods/ephemeralcontainers and every workload kind in the rules, the CA bundle filled in, and Service/Deployment/
 * webhook wiring consistent. The YAML stream round-trips to the same objects.
 */
import { X509Certificate } from 'node:crypto';
import {
  ValidatingWebhookConfiguration,
  MutatingWebhookConfiguration,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { manifestsYaml, renderManifests, type KubeObject } from '../src/index.js';

/** A self-signed P-256 CA certificate (made once with openssl; Node cannot make certificates). */
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBnTCCAUOgAwIBAgIUO7XrepdxdKh8O+rRRHMeIbxI5sQwCgYIKoZIzj0EAwIw
JDEiMCAGA1UEAwwZYWlybG9jayBhZG1pc3Npb24gdGVzdCBDQTAeFw0yNjEyMDYy
MDM0MDNaFw0zNjEyMDMyMDM0MDNaMCQxIjAgBgNVBAMMGWFpcmxvY2sgYWRtaXNz
aW9uIHRlc3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ6+P3Rl/hdcXj4
gVbj6dlpBmNhlWGx9qNTzChwLC8jWwYUBiE29w/VuAxulilk7gAx11i/EL2RAUq6
KVMvPLQYo1MwUTAdBgNVHQ4EFgQUP8V2UgcaiqLF6Y2fc/K05VH9M5MwHwYDVR0j
BBgwFoAUP8V2UgcaiqLF6Y2fc/K05VH9M5MwDwYDVR0TAQH/BAUwAwEB/zAKBggq
hkjOPQQDAgNIADBFAiBSPd2m1xwUFnyedy+WjGbyFrUDRAfXcm05B2Bp1dykpwIh
APtqFD76IDm1cwDPzDzluLPYnxLdJU07+4JRtbFB1r9h
-----END CERTIFICATE-----`;

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace: Namespace as never,
  ServiceAccount: ServiceAccount as never,
  Deployment: Deployment as never,
  Service: Service as never,
  ValidatingWebhookConfiguration: ValidatingWebhookConfiguration as never,
  MutatingWebhookConfiguration: MutatingWebhookConfiguration as never,
};

function validateAll(objects: KubeObject[]): void {
  for (const o of objects) {
    const Model = MODELS[o.kind];
    expect(Model, o.kind).toBeDefined();
    expect(() => new Model!(structuredClone(o) as never).validate(), o.kind).not.toThrow();
  }
}

interface Webhook {
  name: string;
  failurePolicy: string;
  sideEffects: string;
  timeoutSeconds: number;
  matchPolicy: string;
  admissionReviewVersions: string[];
  clientConfig: { service: { name: string; namespace: string; path: string; port: number }; caBundle?: string };
  namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] };
  rules: { apiGroups: string[]; apiVersions: string[]; operations: string[]; resources: string[] }[];
  reinvocationPolicy?: string;
}

const byKind = (objects: KubeObject[], kind: string): KubeObject => objects.find((o) => o.kind === kind)!;
const webhookOf = (o: KubeObject): Webhook => (o.webhooks as Webhook[])[0]!;

const ca = (): string => CA_PEM;

describe('admission manifests', () => {
  it('every object validates against the Kubernetes schema', () => {
    expect(new X509Certificate(ca()).ca).toBe(true);
    validateAll(
      renderManifests({
        namespace: 'airlock-system',
        image: 'registry.corp/airlock@sha256:' + 'a'.repeat(64),
        caBundlePem: ca(),
      }),
    );
    validateAll(renderManifests({ namespace: 'airlock-system', image: 'registry.corp/airlock:1' }));
  });

  it('the schema check is real: a webhook with a wrong field type or no sideEffects is refused', () => {
    const objects = renderManifests({ namespace: 'airlock-system', image: 'img', caBundlePem: ca() });
    const wrongType = structuredClone(byKind(objects, 'ValidatingWebhookConfiguration'));
    (webhookOf(wrongType) as unknown as { timeoutSeconds: string }).timeoutSeconds = 'ten';
    expect(() => new ValidatingWebhookConfiguration(wrongType as never).validate()).toThrow();
    const noSideEffects = structuredClone(byKind(objects, 'MutatingWebhookConfiguration'));
    delete (webhookOf(noSideEffects) as Partial<Webhook>).sideEffects;
    expect(() => new MutatingWebhookConfiguration(noSideEffects as never).validate()).toThrow();
  });

  it('prints Namespace, ServiceAccount, Deployment, Service, Validating and Mutating webhook configurations', () => {
    const objects = renderManifests({ namespace: 'airlock-system', image: 'img', caBundlePem: ca() });
    expect(objects.map((o) => o.kind)).toEqual([
      'Namespace',
      'ServiceAccount',
      'Deployment',
      'Service',
      'ValidatingWebhookConfiguration',
      'MutatingWebhookConfiguration',
    ]);
  });

  it.each(['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration'])(
    '%s: fail closed, no side effects, timeout, own namespace and kube-system excluded, every kind, CA filled',
    (kind) => {
      const objects = renderManifests({
        namespace: 'airlock-system',
        image: 'img',
        caBundlePem: ca(),
        timeoutSeconds: 10,
      });
      const w = webhookOf(byKind(objects, kind));
      expect(w.failurePolicy).toBe('Fail');
      expect(w.sideEffects).toBe('None');
      expect(w.timeoutSeconds).toBe(10);
      expect(w.matchPolicy).toBe('Equivalent');
      expect(w.admissionReviewVersions).toEqual(['v1']);
      expect(w.namespaceSelector).toEqual({
        matchExpressions: [
          { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['airlock-system', 'kube-system'] },
        ],
      });
      const resources = (group: string): string[] =>
        w.rules.filter((r) => r.apiGroups.includes(group)).flatMap((r) => r.resources);
      expect(resources('')).toEqual(
        expect.arrayContaining(['pods', 'pods/ephemeralcontainers', 'replicationcontrollers', 'podtemplates']),
      );
      expect(resources('apps')).toEqual(
        expect.arrayContaining(['deployments', 'replicasets', 'statefulsets', 'daemonsets']),
      );
      expect(resources('batch')).toEqual(expect.arrayContaining(['jobs', 'cronjobs']));
      // DELETE and CONNECT are never blocked; status/scale subresources are not matched by these resources.
      for (const r of w.rules) {
        expect(r.operations).toEqual(['CREATE', 'UPDATE']);
        expect(r.resources.filter((x) => x.includes('/'))).toEqual(
          r.apiGroups.includes('') ? ['pods/ephemeralcontainers'] : [],
        );
      }
      expect(Buffer.from(w.clientConfig.caBundle!, 'base64').toString('utf8').trim()).toBe(ca().trim());
      const mutating = kind === 'MutatingWebhookConfiguration';
      expect(w.clientConfig.service.path).toBe(mutating ? '/mutate' : '/validate');
      expect(w.name).toBe(mutating ? 'mutate.airlock.dev' : 'validate.airlock.dev');
      if (mutating) expect(w.reinvocationPolicy).toBe('IfNeeded');
    },
  );

  it('the Service, the Deployment and the webhooks agree (names, namespace, ports, probes, deadline below timeout)', () => {
    const objects = renderManifests({
      namespace: 'ws',
      image: 'registry.corp/airlock:1',
      caBundlePem: ca(),
      timeoutSeconds: 5,
    });
    const service = byKind(objects, 'Service') as KubeObject & {
      spec: { selector: Record<string, string>; ports: { port: number; targetPort: number }[] };
    };
    const deployment = byKind(objects, 'Deployment') as KubeObject & {
      spec: {
        template: {
          metadata: { labels: Record<string, string> };
          spec: {
            serviceAccountName: string;
            containers: {
              image: string;
              args: string[];
              ports: { containerPort: number }[];
              readinessProbe: { httpGet: { path: string; scheme: string } };
            }[];
          };
        };
      };
    };
    const container = deployment.spec.template.spec.containers[0]!;
    expect(container.image).toBe('registry.corp/airlock:1');
    expect(deployment.spec.template.metadata.labels).toEqual(service.spec.selector);
    expect(service.spec.ports[0]!.targetPort).toBe(container.ports[0]!.containerPort);
    expect(container.readinessProbe.httpGet).toMatchObject({ path: '/readyz', scheme: 'HTTPS' });
    expect(deployment.spec.template.spec.serviceAccountName).toBe(byKind(objects, 'ServiceAccount').metadata.name);
    expect(container.args.slice(0, 2)).toEqual(['admission', 'serve']);
    // 80% of the 5 s webhook timeout: the server answers before the API server gives up.
    expect(container.args.join(' ')).toContain('--deadline 4000ms');
    for (const kind of ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']) {
      const w = webhookOf(byKind(objects, kind));
      expect(w.timeoutSeconds).toBe(5);
      expect(w.clientConfig.service).toMatchObject({
        name: service.metadata.name,
        namespace: 'ws',
        port: service.spec.ports[0]!.port,
      });
    }
    expect(byKind(objects, 'Namespace').metadata.name).toBe('ws');
  });

  it('without a CA bundle: no caBundle, cert-manager is asked to inject one', () => {
    const objects = renderManifests({ namespace: 'airlock-system', image: 'img' });
    for (const kind of ['ValidatingWebhookConfiguration', 'MutatingWebhookConfiguration']) {
      const o = byKind(objects, kind);
      expect(webhookOf(o).clientConfig.caBundle).toBeUndefined();
      expect(o.metadata.annotations).toEqual({ 'cert-manager.io/inject-ca-from': 'airlock-system/airlock-admission' });
    }
  });

  it.each([
    ['kube-system as the namespace', { namespace: 'kube-system' }, /not kube-system/],
    ['a namespace that is not a DNS label', { namespace: 'Airlock_System' }, /not a DNS label/],
    ['a timeout over 30 s', { timeoutSeconds: 31 }, /2 to 30/],
    ['an empty image', { image: ' ' }, /image reference/],
    ['a CA bundle that is not PEM', { caBundlePem: 'hello' }, /no PEM certificate/],
    [
      'a CA bundle whose certificate does not parse',
      { caBundlePem: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' },
      /does not parse/,
    ],
  ])('refuses %s', (_name, override, message) => {
    expect(() => renderManifests({ namespace: 'airlock-system', image: 'img', ...override })).toThrow(message);
  });

  it('the YAML stream parses back to the same objects, without YAML aliases', () => {
    const objects = renderManifests({ namespace: 'airlock-system', image: 'img', caBundlePem: ca() });
    const text = manifestsYaml(objects);
    expect(text).not.toMatch(/[&*]a\d/);
    const docs = parseAllDocuments(text);
    expect(Array.isArray(docs)).toBe(true);
    const parsed = (docs as { toJS(): unknown }[]).map((d) => d.toJS());
    expect(parsed).toEqual(objects);
    validateAll(parsed as KubeObject[]);
  });
});
