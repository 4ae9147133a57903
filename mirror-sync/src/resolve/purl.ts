import { makeGenericPurl, makeNpmPurl, makePypiPurl } from '@airlock/sbom';

/**
 * Package URLs of manifest entries. One implementation for the whole project (@airlock/sbom, on packageurl-js):
 * the manifest, the snapshot SBOM and the provenance (which copies the manifest's purl from the mirror lookup)
 * must name the same package with the same string, and the SBOM makes exactly these for entries without a purl.
 */
export function npmPurl(name: string, version: string): string {
  return makeNpmPurl(name, version);
}

/** One purl per distribution file: `file_name` tells a release's wheels and its sdist apart. */
export function pypiPurl(name: string, version: string, filename: string): string {
  return makePypiPurl(name, version, filename);
}

export function genericPurl(name: string, sha256: string, downloadUrl: string | undefined): string {
  return makeGenericPurl(name, null, { sha256, ...(downloadUrl ? { downloadUrl } : {}) });
}
