/**
 * `airlock admission manifests` through the built CLI: the YAML stream on stdout is what `kubectl apply -f -` would
 * read — every document an object the upstream Kubernetes schema accepts (kubernetes-models 4.5.1), the CA bundle
 * from --ca-bundle, the timeout from --timeout — and bad input exits 2 with nothing on stdout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MutatingWebhookConfiguration,
  ValidatingWebhookConfiguration,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { Namespace, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

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
-----END CERTIFICATE-----
`;

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  Namespace: Namespace as never,
  ServiceAccount: ServiceAccount as never,
  Deployment: Deployment as never,
  Service: Service as never,
  ValidatingWebhookConfiguration: ValidatingWebhookConfiguration as never,
  MutatingWebhookConfiguration: MutatingWebhookConfiguration as never,
};

const dir = mkdtempSync(join(tmpdir(), 'airlock-admission-manifests-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('airlock admission manifests', () => {
  it('prints six YAML documents the Kubernetes schema accepts, with the CA bundle and timeout given', async () => {
    const ca = join(dir, 'ca.crt');
    writeFileSync(ca, CA_PEM);
    const r = await runCli([
      ...['admission', 'manifests', '--namespace', 'airlock-system', '--image', 'registry.corp/airlock:1'],
      ...['--ca-bundle', ca, '--timeout', '7', '--quiet'],
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const docs = parseAllDocuments(r.stdout);
    expect(Array.isArray(docs)).toBe(true);
    const objects = (docs as { errors: unknown[]; toJS(): unknown }[]).map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJS() as { kind: string; webhooks?: { timeoutSeconds: number; clientConfig: { caBundle: string } }[] };
    });
    expect(objects.map((o) => o.kind)).toEqual(Object.keys(MODELS));
    for (const o of objects) expect(() => new MODELS[o.kind]!(o as never).validate(), o.kind).not.toThrow();
    for (const o of objects.filter((x) => x.webhooks)) {
      expect(o.webhooks![0]!.timeoutSeconds).toBe(7);
      expect(Buffer.from(o.webhooks![0]!.clientConfig.caBundle, 'base64').toString('utf8')).toBe(CA_PEM);
    }
  });

  it('a missing CA file, a timeout over 30 s, kube-system: exit 2, nothing on stdout', async () => {
    const base = ['admission', 'manifests', '--image', 'registry.corp/airlock:1'];
    for (const args of [
      [...base, '--namespace', 'airlock-system', '--ca-bundle', join(dir, 'missing.crt')],
      [...base, '--namespace', 'airlock-system', '--timeout', '31'],
      [...base, '--namespace', 'kube-system'],
    ]) {
      const r = await runCli(args);
      expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^airlock: error \[/m);
    }
  });
});
