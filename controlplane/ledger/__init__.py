"""Evidence: the append-only record of decisions. For now, OPA's decision logs in a Redis stream;
the evidence-ledger issue (#5) turns this stream into a signed RFC 9162 Merkle log."""
