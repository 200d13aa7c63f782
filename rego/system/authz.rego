# METADATA
# title: OPA's own REST API
# description: |
#   OPA runs with --authentication=token --authorization=basic and asks
#   data.system.authz.allow for every request to its REST API, with the bearer
#   token as input.identity (OPA docs security.md; DESIGN.md section 5: OPA's API
#   is locked). Anyone may GET the health endpoints. The control plane, and only
#   it, may also evaluate decisions (GET or POST under /v1/data), GET /metrics and
#   GET /v1/status (read-only: which bundle revision is active, for readiness).
#   Nothing may write policies or data, compile, or run ad-hoc queries.
#
#   The control plane is recognised by the SHA-256 (lowercase hex) of its token,
#   listed in data.system.controlplane.opa_client_sha256. That data file is
#   injected into the bundle at publish time (system/controlplane/data.json), so
#   that no token is ever in the policy repository; without it nobody is admitted
#   but health checks.
# schemas:
#   - input: schema.authz_input
package system.authz

# METADATA
# title: Allow
# description: The request may reach OPA's API. Anything not allowed below is refused (401).
# entrypoint: true
default allow := false

allow if {
	input.method == "GET"
	input.path[0] == "health"
}

allow if {
	control_plane
	input.method in {"GET", "POST"}
	array.slice(input.path, 0, 2) == ["v1", "data"]
}

allow if {
	control_plane
	input.method == "GET"
	input.path in {["metrics"], ["v1", "status"]}
}

# METADATA
# title: Control plane
# description: |
#   The caller's bearer token hashes to one of the listed digests. An absent or
#   empty token never matches.
control_plane if {
	input.identity != ""
	digest := crypto.sha256(input.identity)
	some listed in data.system.controlplane.opa_client_sha256
	lower(listed) == digest
}
