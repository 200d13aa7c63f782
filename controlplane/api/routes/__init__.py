"""Routes, one module per domain. Each parses, calls a service and maps the result; no logic."""
