"""The evidence archive: the ledger as a C2SP tlog-tiles directory, and its offline verifier."""
