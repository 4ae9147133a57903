import { PackageURL } from 'packageurl-js';
import { SbomError } from './errors.js';

/**
 * Package URLs (https://github.com/package-url/purl-spec) via packageurl-js, which also normalises them per type
 * (lowercase type, npm scope `@` percent-encoded as `%40`, PEP 503 names for pypi). Every purl this package writes
 * goes through here, so the same package always gets the same string.
 */
export function parsePurl(purl: string): PackageURL {
  try {
    return PackageURL.fromString(purl);
  } catch (cause) {
    throw new SbomError(
      'SBOM_INVALID_PURL',
      `invalid package URL '${purl.slice(0, 200)}': ${(cause as Error).message}`,
      { cause },
    );
  }
}

/** `@scope/name` → `pkg:npm/%40scope/name@version`. */
export function npmPurl(name: string, version: string | null): PackageURL {
  const slash = name.startsWith('@') ? name.indexOf('/') : -1;
  const [namespace, bare] = slash > 0 ? [name.slice(0, slash), name.slice(slash + 1)] : [undefined, name];
  return build('npm', namespace, bare, version, undefined);
}

/** `pkg:pypi/<name>@<version>?file_name=<file>`; file_name tells the wheels and the sdist of one release apart. */
export function pypiPurl(name: string, version: string | null, filename?: string): PackageURL {
  return build('pypi', undefined, name, version, filename ? { file_name: filename } : undefined);
}

/** `pkg:generic/<name>@<version>?download_url=…&checksum=sha256:…` for things with no package ecosystem. */
export function genericPurl(
  name: string,
  version: string | null,
  opts: { downloadUrl?: string; sha256?: string } = {},
): PackageURL {
  const qualifiers: Record<string, string> = {};
  if (opts.downloadUrl) qualifiers.download_url = opts.downloadUrl;
  if (opts.sha256) qualifiers.checksum = `sha256:${opts.sha256}`;
  return build('generic', undefined, name, version, Object.keys(qualifiers).length > 0 ? qualifiers : undefined);
}

function build(
  type: string,
  namespace: string | undefined,
  name: string,
  version: string | null,
  qualifiers: Record<string, string> | undefined,
): PackageURL {
  try {
    // Round-trip through the string form so type-specific normalisation applies exactly as for parsed purls.
    return PackageURL.fromString(
      new PackageURL(type, namespace, name, version ?? undefined, qualifiers, undefined).toString(),
    );
  } catch (cause) {
    throw new SbomError(
      'SBOM_INVALID_PURL',
      `cannot make a ${type} package URL for '${name}': ${(cause as Error).message}`,
      { cause },
    );
  }
}

// ---- string forms, for callers outside this package (e.g. mirror-sync writing manifest purls) ----

/** Parses and re-serialises a purl in canonical form; throws SBOM_INVALID_PURL. */
export function canonicalPurl(purl: string): string {
  return parsePurl(purl).toString();
}

export function makeNpmPurl(name: string, version: string | null): string {
  return npmPurl(name, version).toString();
}

export function makePypiPurl(name: string, version: string | null, filename?: string): string {
  return pypiPurl(name, version, filename).toString();
}

export function makeGenericPurl(
  name: string,
  version: string | null,
  opts: { downloadUrl?: string; sha256?: string } = {},
): string {
  return genericPurl(name, version, opts).toString();
}

/** `namespace/name` of a purl (e.g. `@scope/pkg` for npm), or undefined when it does not parse. */
export function purlDisplayName(purl: string): string | undefined {
  try {
    const p = PackageURL.fromString(purl);
    return p.namespace ? `${p.namespace}/${p.name}` : p.name;
  } catch {
    return undefined;
  }
}
