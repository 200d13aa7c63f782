"""The development stack behind `controlplane up`: Redis, OPA and the API as supervised children.

`redis_server.py` and `opa_server.py` say how each component is configured and started (pure
functions the test fixtures reuse); `children.py` runs and stops processes; `up.py` puts them
together in order and supervises them.
"""
