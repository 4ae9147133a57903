/**
 * One example per command, shown at the end of its `--help` (added to every command by program.ts; the CLI
 * contract test fails for a command without one). `run` has its own, longer help text.
 */
export const EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  demo: ['airlock demo', 'airlock demo --data /tmp/airlock-demo --json > demo.json'],
  up: [
    'airlock up --data /var/lib/airlock/plane',
    'airlock up --data plane --tlog-port 8100 --ca-port 8101 --identity-port 8102 --tsa-port 8103',
  ],
  'identity token': [
    'airlock identity token --data plane --subject spiffe://airlock.internal/ci/release --break-glass  # admin only, logged',
  ],
  'identity agent': [
    'airlock identity agent --socket /run/airlock/agent.sock --entries /etc/airlock/entries.json --data /var/lib/airlock/plane',
  ],
  'identity svid': ['airlock identity svid --socket /run/airlock/agent.sock --out-dir /run/airlock/svid --watch'],
  'tlog serve': ['airlock tlog serve --data log --listen 127.0.0.1:8100 --log-name tlog.airlock.internal'],
  'tlog monitor': [
    'airlock tlog monitor --url http://127.0.0.1:8100 --state monitor.json --json',
    'airlock tlog monitor --tiles --url http://tiles.internal/api/v2 --public-key log.pub --log-name tlog.airlock.internal --state m.json --witness "$(cat w1.vkey)" --min-witnesses 1',
  ],
  'tlog witness-serve': [
    'airlock tlog witness-serve --listen 127.0.0.1:8200 --name witness.example/w1 --key w1.pem --state w1.json --origin "tlog.airlock.internal - 1" --public-key log.pub',
  ],
  'tlog witness': [
    'airlock tlog witness --url http://127.0.0.1:8100/api/v2 --public-key log.pub --log-name tlog.airlock.internal --name witness.example/w1 --key w1.pem --state w1.json --out cosigned.txt',
  ],
  sign: [
    'airlock sign app.tar --data plane',
    'airlock sign app.tar --key signing.pem --rekor-url http://127.0.0.1:8100 --tsa-url http://127.0.0.1:8103',
  ],
  attest: [
    'airlock attest app.tar --predicate-type https://example.com/review/v1 --predicate review.json --data plane',
  ],
  verify: [
    'airlock verify app.tar --bundle app.tar.sigstore.json --data plane \\',
    '  --certificate-identity spiffe://airlock.internal/airlock/cli --certificate-oidc-issuer http://127.0.0.1:8102',
    'airlock verify app.tar --bundle app.tar.sigstore.json --data plane --timestamp-threshold 2 \\',
    '  --certificate-identity spiffe://airlock.internal/airlock/cli --certificate-oidc-issuer http://127.0.0.1:8102',
    'airlock verify app.tar --bundle app.tar.sigstore.json --trusted-root public-good.json --ctlog-threshold 1 \\',
    '  --certificate-identity dev@example.com --certificate-oidc-issuer https://accounts.google.com',
  ],
  'verify artifact': [
    'airlock verify artifact out/app.tar --policy release.policy.yaml --mirror-store /srv/mirror --vsa app.vsa.json --data plane',
    'airlock verify artifact out/app.tar --policy release.policy.yaml --mirror http://mirror.internal:4873 --data plane',
    'airlock verify artifact out/app.tar --data plane --builder-id spiffe://airlock.internal/airlock/runner \\',
    '  --source-uri "https://git.corp/acme/*.git" --source-versioned-tag v1 --certificate-identity spiffe://airlock.internal/airlock/runner \\',
    '  --certificate-oidc-issuer http://127.0.0.1:8102',
  ],
  'verify image': ['airlock verify image registry.corp:5000/acme/app:v1.2.0 --policy release.policy.yaml --data plane'],
  'verify vsa': [
    'airlock verify vsa out/app.tar --bundle app.vsa.json --policy-digest sha256:<hex> --data plane \\',
    '  --verifier-identity spiffe://airlock.internal/airlock/verifier --verifier-issuer http://127.0.0.1:8102',
    'airlock verify vsa registry.corp:5000/acme/app:v1.2.0 --policy-digest sha256:<hex> --data plane \\',
    '  --verifier-identity spiffe://airlock.internal/airlock/verifier --verifier-issuer http://127.0.0.1:8102',
  ],
  report: [
    'airlock report out/app.tar --policy release.policy.yaml --data plane --html report.html --md report.md',
    'airlock report registry.corp:5000/acme/app:v1.2.0 --policy release.policy.yaml --data plane --html report.html',
  ],
  sync: [
    'airlock sync --npm-lock package-lock.json --requirements requirements.txt --out snapshot-42.tar --data plane',
    'airlock sync --npm-lock package-lock.json --npm-registry https://registry.npmjs.org --out s.tar --data plane',
  ],
  'mirror import': [
    'airlock mirror import snapshot-42.tar --store /srv/mirror --create --data plane --max-snapshot-age 30d \\',
    '  --sync-identity spiffe://airlock.internal/airlock/mirror-sync --sync-issuer http://127.0.0.1:8102',
  ],
  'mirror serve': [
    'airlock mirror serve --store /srv/mirror --listen 127.0.0.1:4873 --workers 2',
    'airlock mirror serve --store s3://mirror/prod --index /srv/mirror-index --s3-config /etc/airlock/s3.json --workers 2',
    '# a replica over a shared PostgreSQL index (password in PGPASSWORD):',
    'airlock mirror serve --store /srv/mirror --index postgres://airlock@db.internal:5432/mirror --listen 127.0.0.1:4874',
  ],
  'mirror fsck': [
    'airlock mirror fsck --store /srv/mirror --json',
    'airlock mirror fsck --store s3://mirror/prod --index /srv/mirror-index --s3-config /etc/airlock/s3.json',
  ],
  'mirror export-snapshot': ['airlock mirror export-snapshot snapshot-42 --store /srv/mirror --snapshot 42'],
  'mirror export-bazel-cache': ['airlock mirror export-bazel-cache /var/cache/bazel-repo --store /srv/mirror'],
  'admission serve': [
    'airlock admission serve --policy admission-policy.yaml --trusted-root trusted_root.json \\',
    '  --tls-cert tls.crt --tls-key tls.key --registry-config registries.yaml --port 8443 --deadline 8s',
  ],
  'admission manifests': [
    'airlock admission manifests --namespace airlock-system --image registry.corp/airlock@sha256:<hex> \\',
    '  --ca-bundle ca.crt --timeout 10 > admission.yaml',
  ],
  'admit workspace': [
    'airlock admit workspace --image registry.corp/dev/workspace:2024 --toolchain sdk.tar.gz \\',
    '  --policy admission-policy.yaml --trusted-root trusted_root.json --registry-config registries.yaml',
  ],
  'conformance sign-bundle': [
    'airlock conformance sign-bundle --identity-token "$TOKEN" --bundle out.sigstore.json artifact.bin',
  ],
  'conformance verify-bundle': [
    'airlock conformance verify-bundle --bundle b.sigstore.json --certificate-identity ID \\',
    '  --certificate-oidc-issuer URL --trusted-root trusted_root.json artifact.bin',
  ],
};
