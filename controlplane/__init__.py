"""Execution governance control plane: decides with OPA whether an action may run, and keeps
tamper-evident evidence of every decision. See README.md and docs/architecture.md."""

__version__ = "0.1.0"
