"""Identities: the principals that ask for decisions (agents, services, executors, humans), their
status and their Ed25519 public keys."""
