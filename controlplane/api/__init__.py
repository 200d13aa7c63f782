"""The HTTP API: FastAPI app factory, thin routes per domain, auth and problem+json."""
