"""Test support: real Redis, OPA and API processes on free ports, and ways to hurt them."""
