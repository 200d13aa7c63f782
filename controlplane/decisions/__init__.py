"""Decisions: asking OPA whether something may run, and denying whenever the answer is unusable."""
