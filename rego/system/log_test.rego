package system.log_test

import data.system.log

event := {
	"decision_id": "4ca636c1-55e4-417a-b1d8-4aceb67960d1",
	"path": "governance/execution/decision",
	"input": {
		"identity": {"id": "agent:demo", "kind": "agent", "status": "active", "attributes": {}},
		"request": {"action": "payments.transfer", "resource": "account:42", "args": {"amount": 100}},
	},
	"result": {"allow": true, "reasons": []},
	"labels": {"app": "controlplane"},
	"timestamp": "2026-01-05T10:00:00Z",
}

# By default nothing is dropped and nothing is masked.

test_nothing_is_dropped_by_default if {
	some path in ["governance/execution/decision", "system/authz/allow", "anything"]
	log.drop == false with input as object.union(event, {"path": path})
}

test_nothing_is_dropped_without_input if {
	log.drop == false
}

test_nothing_is_masked_by_default if {
	count(log.mask) == 0 with input as event
}

# How a team uses them.

test_listed_pointers_are_masked if {
	masked := log.mask with input as event with log.masked_pointers as {"/input/request/args/amount"}
	masked == {"/input/request/args/amount"}
}

test_listed_paths_are_dropped if {
	log.drop with input as object.union(event, {"path": "governance/health/ping"})
		with log.dropped_paths as {"governance/health/ping"}
	not log.drop with input as event with log.dropped_paths as {"governance/health/ping"}
}
