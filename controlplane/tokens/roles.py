"""The roles a bearer token can carry (DESIGN.md §4, "Who may call what")."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    ADMIN = "admin"
    POLICY_AUTHOR = "policy-author"
    SRE = "sre"
    AUDITOR = "auditor"
    SERVICE = "service"
    EXECUTOR = "executor"
    OPA = "opa"
