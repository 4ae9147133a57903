/**
 * Package URLs. https://github.com/package-url/purl-spec/blob/main/PURL-SPECIFICATION.rst
 * Components are percent-encoded (`:` left as is, as packageurl-js does); qualifiers sorted by key.
 */
function enc(s: string): string {
  return encodeURIComponent(s).replace(/%3A/gi, ':');
}

function qualifiers(q: Record<string, string | undefined>): string {
  const parts = Object.entries(q)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${enc(v)}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

export function npmPurl(name: string, version: string): string {
  const slash = name.startsWith('@') ? name.indexOf('/') : -1;
  const ns = slash > 0 ? `${enc(name.slice(0, slash))}/` : '';
  return `pkg:npm/${ns}${enc(slash > 0 ? name.slice(slash + 1) : name)}@${enc(version)}`;
}

/** purl-spec pypi: lower case, `_` → `-`. */
export function pypiPurl(name: string, version: string): string {
  return `pkg:pypi/${enc(name.toLowerCase().replace(/_/g, '-'))}@${enc(version)}`;
}

export function genericPurl(name: string, sha256: string, downloadUrl: string | undefined): string {
  return `pkg:generic/${enc(name)}${qualifiers({ checksum: `sha256:${sha256}`, download_url: downloadUrl })}`;
}
