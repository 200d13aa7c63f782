"""Policies: bundles built and signed the way OPA verifies them, revisions, the bundle service and
the OPA fleet's status (issue #4)."""
