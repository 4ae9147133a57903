/** A package URL, split and percent-decoded (https://github.com/package-url/purl-spec). */
export interface ParsedPurl {
  type: string;
  namespace?: string;
  name: string;
  version?: string;
}

/** Parses `pkg:type/namespace/name@version?qualifiers#subpath`; undefined when it is not a purl. */
export function parsePurl(purl: string): ParsedPurl | undefined {
  const m = /^pkg:\/*([A-Za-z][A-Za-z0-9.+-]*)\/([^?#]+)(?:\?[^#]*)?(?:#.*)?$/.exec(purl);
  if (!m) return undefined;
  let path = m[2]!.replace(/\/+$/, '');
  let version: string | undefined;
  const at = path.lastIndexOf('@');
  if (at > 0 && path.indexOf('/', at) === -1) {
    version = path.slice(at + 1);
    path = path.slice(0, at);
  }
  const segments = path.split('/').filter((s) => s !== '');
  if (segments.length === 0) return undefined;
  try {
    const decoded = segments.map((s) => decodeURIComponent(s));
    const name = decoded.pop()!;
    return {
      type: m[1]!.toLowerCase(),
      ...(decoded.length > 0 ? { namespace: decoded.join('/') } : {}),
      name,
      ...(version ? { version: decodeURIComponent(version) } : {}),
    };
  } catch {
    return undefined;
  }
}

/** purl type → OSV ecosystem (https://ossf.github.io/osv-schema/#affectedpackage-field). */
const OSV_ECOSYSTEMS: Record<string, string> = {
  npm: 'npm',
  pypi: 'PyPI',
  golang: 'Go',
  maven: 'Maven',
  cargo: 'crates.io',
  gem: 'RubyGems',
  nuget: 'NuGet',
  composer: 'Packagist',
  hex: 'Hex',
  pub: 'Pub',
  swift: 'SwiftURL',
  cran: 'CRAN',
};

export function osvEcosystem(p: ParsedPurl): string | undefined {
  return OSV_ECOSYSTEMS[p.type];
}

/** The package name as OSV writes it for the purl's ecosystem (npm `@scope/name`, Maven `group:artifact`). */
export function osvName(p: ParsedPurl): string {
  if (p.type === 'maven') return p.namespace ? `${p.namespace}:${p.name}` : p.name;
  const full = p.namespace ? `${p.namespace}/${p.name}` : p.name;
  return p.type === 'pypi' ? normalizePypiName(full) : full;
}

/** PEP 503 normalisation: case-insensitive, runs of `-_.` are one `-`. */
export function normalizePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** `type/namespace/name` without version, qualifiers or subpath, for comparing package identities. */
export function purlPackageKey(p: ParsedPurl): string {
  return `${p.type}/${osvName(p)}`;
}
