"""Signed execution requests: parsing, verification against the identity registry, freshness and
replay protection (DESIGN.md §5)."""
