package system.authz_test

import data.system.authz

token := "cp-secret-token"

# sha256("cp-secret-token"), lowercase hex.
digest := "b849be2c549e71777925760a6cf445bed7ddf5a8e5e886199717422564b66014"

decision_path := ["v1", "data", "governance", "execution", "decision"]

request(identity, method, path) := {"identity": identity, "method": method, "path": path}

anonymous(method, path) := {"method": method, "path": path}

allowed(req) if {
	authz.allow with input as req with data.system.controlplane.opa_client_sha256 as ["0000", digest]
}

# Health: anyone, GET only.

test_anyone_may_get_health if {
	some path in [["health"], ["health", "live"], ["health", "ready"]]
	allowed(anonymous("GET", path))
	allowed(request("wrong", "GET", path))
	allowed(request(token, "GET", path))
}

test_health_without_any_configured_client if {
	authz.allow with input as anonymous("GET", ["health"])
}

test_nobody_may_write_health if {
	some method in ["POST", "PUT", "PATCH", "DELETE"]
	not allowed(request(token, method, ["health"]))
	not allowed(anonymous(method, ["health"]))
}

# The control plane: decisions and metrics.

test_control_plane_may_post_and_get_decisions if {
	some method in ["POST", "GET"]
	allowed(request(token, method, decision_path))
	allowed(request(token, method, ["v1", "data"]))
}

test_control_plane_may_get_metrics_and_status if {
	some path in [["metrics"], ["v1", "status"]]
	allowed(request(token, "GET", path))
	not allowed(request(token, "POST", path))
	not allowed(request("wrong", "GET", path))
	not allowed(anonymous("GET", path))
}

test_digest_listed_in_upper_case_matches if {
	authz.allow with input as request(token, "POST", decision_path)
		with data.system.controlplane.opa_client_sha256 as [upper(digest)]
}

test_control_plane_may_not_write_data_or_policies if {
	some method in ["PUT", "PATCH", "DELETE"]
	some path in [decision_path, ["v1", "data"], ["v1", "policies", "x"], ["v1", "config"]]
	not allowed(request(token, method, path))
}

test_control_plane_may_not_use_other_apis if {
	some method in ["GET", "POST"]
	some path in [
		["v1", "policies"],
		["v1", "policies", "governance"],
		["v1", "compile"],
		["v1", "query"],
		["v1", "config"],
		["v1", "status", "x"],
		["v0", "data", "governance"],
		[""],
		[],
	]
	not allowed(request(token, method, path))
}

# Wrong, missing or empty tokens: nothing but health.

test_wrong_token_may_not_decide if {
	some identity in ["wrong", digest, concat("", [token, " "]), upper(token)]
	not allowed(request(identity, "POST", decision_path))
	not allowed(request(identity, "GET", ["metrics"]))
}

test_missing_token_may_not_decide if {
	not allowed(anonymous("POST", decision_path))
	not allowed(anonymous("GET", ["metrics"]))
}

test_empty_token_may_not_decide_even_if_its_digest_is_listed if {
	empty_digest := crypto.sha256("")
	not authz.allow with input as request("", "POST", decision_path)
		with data.system.controlplane.opa_client_sha256 as [empty_digest]
}

test_no_client_configured_admits_nobody if {
	not authz.allow with input as request(token, "POST", decision_path)
	not authz.allow with input as request(token, "POST", decision_path)
		with data.system.controlplane.opa_client_sha256 as []
}
