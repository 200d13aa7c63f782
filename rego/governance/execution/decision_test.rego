package governance.execution_test

import data.governance.execution

demo_input := {
	"identity": {"id": "agent:demo", "kind": "agent", "status": "active", "attributes": {}},
	"request": {"action": "demo.echo", "resource": "demo", "args": {}},
	"context": {},
}

test_allow_demo_echo_for_active_agent if {
	execution.decision == {"allow": true, "reasons": []} with input as demo_input
}

test_deny_other_action if {
	d := execution.decision with input as object.union(demo_input, {"request": {"action": "payments.transfer"}})
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

test_deny_suspended_agent if {
	d := execution.decision with input as object.union(demo_input, {"identity": {"status": "suspended"}})
	d == {"allow": false, "reasons": ["identity_not_active"]}
}

test_deny_service_kind if {
	d := execution.decision with input as object.union(demo_input, {"identity": {"kind": "service"}})
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

test_deny_without_input if {
	execution.decision == {"allow": false, "reasons": ["identity_not_active"]}
}

test_decision_always_has_allow_and_reasons if {
	d := execution.decision with input as {"identity": "nonsense"}
	is_boolean(d.allow)
	is_array(d.reasons)
}
