// RFC 3161 timestamp authority compatible with sigstore/timestamp-authority: TimeStampReq/TimeStampResp via @peculiar/asn1-tsp, its key and certificate chain.
export {};
