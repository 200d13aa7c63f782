"""Grants: the signed, short-lived permission to run one action with one set of arguments.

`keys.py` keeps the signing keys, `issue.py` makes grants, `verify.py` checks them (offline, in any
executor), `consumption.py` records their single use and their outcome.
"""
