/**
 * Runs a pure parse with V8's stack capture off. @sigstore/core's ASN.1 reader tries every OCTET STRING as nested
 * ASN.1 and catches the ASN1ParseError when it is not (hash values, SCT lists, key ids): a dozen exceptions per
 * bundle, each paying for a stack trace nobody reads. If the parse does fail, it runs again with stack capture
 * back on, so the error that leaves here is exactly the one the plain call throws, stack included.
 */
export function quietParse<T>(parse: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return parse();
  } catch {
    Error.stackTraceLimit = limit;
    return parse();
  } finally {
    Error.stackTraceLimit = limit;
  }
}
