"""Schemathesis hooks for Signet's documents (SCHEMATHESIS_HOOKS=schemathesis_hooks): the DER
request bodies of the timestamp authority and the OCSP responder are bytes on the wire, sent as
schemathesis sends application/octet-stream."""
import schemathesis

for media_type in ("application/ocsp-request", "application/timestamp-query"):
    schemathesis.serializer.alias(media_type, "application/octet-stream")
