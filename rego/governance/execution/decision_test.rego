package governance.execution_test

import data.governance.execution

# Monday 2026-01-05 10:00:00 UTC, inside the high tier's window.
monday_10 := 1767607200000000000

demo_input := {
	"identity": {"id": "agent:demo", "kind": "agent", "status": "active", "attributes": {}},
	"request": {"action": "demo.echo", "resource": "demo", "args": {}},
	"context": {},
}

payer := {
	"identity": {
		"id": "agent:payer",
		"kind": "agent",
		"status": "active",
		"attributes": {"payments": "transfer", "owns": ["account:42"]},
	},
	"request": {"action": "payments.transfer", "resource": "account:42", "args": {"amount": 100}},
	"context": {},
}

high_obligations := {"approval_ticket_required": true, "log_args": true}

with_args(args) := object.union(payer, {"request": {"args": args}})

# demo.echo: the newcomer's allow, exactly, with no obligations key.

test_allow_demo_echo_for_active_agent if {
	execution.decision == {"allow": true, "reasons": []} with input as demo_input
}

test_allow_demo_echo_without_attributes_or_resource if {
	bare := {
		"identity": {"kind": "agent", "status": "active"},
		"request": {"action": "demo.echo", "args": {"n": 123456789012345678901234567890}},
	}
	execution.decision == {"allow": true, "reasons": []} with input as bare
}

test_demo_echo_is_an_action_allowed_and_a_default_agent_action if {
	execution.action_allowed with input as demo_input
	execution.default_agent_actions == {"demo.echo", "tickets.create"}
}

test_deny_service_kind_for_demo_echo if {
	d := execution.decision with input as object.union(demo_input, {"identity": {"kind": "service"}})
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

# Identity status: missing input denies.

test_deny_without_input if {
	execution.decision == {"allow": false, "reasons": ["identity_not_active"]}
}

test_deny_suspended_agent if {
	d := execution.decision with input as object.union(demo_input, {"identity": {"status": "suspended"}})
	d == {"allow": false, "reasons": ["identity_not_active"]}
}

test_deny_revoked_payer_with_identity_not_active_only if {
	d := execution.decision with input as object.union(with_args({"amount": 999999999}), {"identity": {"status": "revoked"}})
		with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["identity_not_active"]}
}

test_decision_always_has_allow_and_reasons if {
	d := execution.decision with input as {"identity": "nonsense"}
	is_boolean(d.allow)
	is_array(d.reasons)
}

# Not entitled: action_not_allowed and nothing about the action's conditions.

test_deny_payments_for_agent_without_attributes if {
	some resource in ["acct", "account:42"]
	some args in [{}, {"amount": 100}]
	no_attributes := object.union(demo_input, {"request": {"action": "payments.transfer", "resource": resource, "args": args}})
	d := execution.decision with input as no_attributes
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

test_deny_payments_when_required_attribute_has_another_value if {
	d := execution.decision with input as object.union(payer, {"identity": {"attributes": {"payments": "refund"}}})
		with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

test_deny_unknown_action if {
	d := execution.decision with input as object.union(demo_input, {"request": {"action": "nuke.everything"}})
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

test_deny_kind_not_listed_even_with_attributes if {
	d := execution.decision with input as object.union(payer, {"identity": {"kind": "executor"}})
		with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

test_deny_action_whose_tier_is_not_defined if {
	d := execution.decision with input as demo_input
		with data.governance.catalog.tiers as {}
	d == {"allow": false, "reasons": ["action_not_allowed"]}
}

# payments.transfer for an entitled identity: allow with the high tier's obligations.

test_allow_transfer_within_cap_and_window_with_obligations if {
	d := execution.decision with input as payer with time.now_ns as monday_10
	d == {"allow": true, "reasons": [], "obligations": high_obligations}
}

test_allow_transfer_when_attribute_is_a_list_holding_the_value if {
	listed := object.union(payer, {"identity": {"attributes": {"payments": ["refund", "transfer"]}}})
	d := execution.decision with input as listed with time.now_ns as monday_10
	d.allow == true
}

test_allow_transfer_for_human_and_service if {
	some kind in ["human", "service"]
	d := execution.decision with input as object.union(payer, {"identity": {"kind": kind}})
		with time.now_ns as monday_10
	d.allow == true
}

test_allow_transfer_of_exactly_the_cap if {
	d := execution.decision with input as with_args({"amount": 50000}) with time.now_ns as monday_10
	d.allow == true
}

# Arguments: amounts are integers in minor units, capped.

test_deny_when_amount_over_cap if {
	d := execution.decision with input as with_args({"amount": 50001}) with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["amount_over_limit"]}
}

test_deny_when_amount_missing_or_not_an_integer if {
	some args in [{}, {"amount": "100"}, {"amount": 10.5}, {"amount": -1}, {"amount": null}]
	d := execution.decision with input as with_args(args) with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["amount_invalid"]}
}

test_tier_cap_applies_when_action_has_none if {
	uncapped := json.remove(data.governance.catalog.actions, ["payments.transfer/amount_cap"])
	over := execution.decision with input as with_args({"amount": 100001})
		with time.now_ns as monday_10
		with data.governance.catalog.actions as uncapped
	over == {"allow": false, "reasons": ["amount_over_limit"]}
	within := execution.decision with input as with_args({"amount": 100000})
		with time.now_ns as monday_10
		with data.governance.catalog.actions as uncapped
	within.allow == true
}

# Resource ownership.

test_deny_when_resource_not_owned if {
	d := execution.decision with input as object.union(payer, {"request": {"resource": "account:7"}})
		with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["resource_not_owned"]}
}

test_deny_when_owns_attribute_missing if {
	no_owns := json.remove(payer, ["identity/attributes/owns"])
	d := execution.decision with input as no_owns with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["attribute_missing"]}
}

test_deny_when_owns_is_not_a_list if {
	d := execution.decision with input as object.union(payer, {"identity": {"attributes": {"owns": "account:42"}}})
		with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["attribute_missing"]}
}

test_deny_scoped_action_without_resource if {
	d := execution.decision with input as json.remove(payer, ["request/resource"]) with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["resource_not_owned"]}
}

test_deny_capped_action_without_args if {
	d := execution.decision with input as json.remove(payer, ["request/args"]) with time.now_ns as monday_10
	d == {"allow": false, "reasons": ["amount_invalid"]}
}

test_entry_without_ownership_scoped_is_scoped if {
	unscoped := json.remove(data.governance.catalog.actions, ["demo.echo/ownership_scoped"])
	d := execution.decision with input as demo_input with data.governance.catalog.actions as unscoped
	d == {"allow": false, "reasons": ["attribute_missing"]}
}

# Time windows (UTC; to_hour exclusive).

test_deny_transfer_outside_window if {
	some now in [
		1768039200000000000, # Saturday 10:00
		1767599999000000000, # Monday 07:59:59
		1767636000000000000, # Monday 18:00:00
	]
	d := execution.decision with input as payer with time.now_ns as now
	d == {"allow": false, "reasons": ["outside_time_window"]}
}

test_allow_transfer_at_window_start if {
	d := execution.decision with input as payer with time.now_ns as 1767600000000000000
	d.allow == true
}

test_action_window_overrides_tier_window if {
	weekends := object.union(data.governance.catalog.actions, {"payments.transfer": {"window": {
		"days": ["Saturday", "Sunday"],
		"from_hour": 0,
		"to_hour": 24,
	}}})
	saturday := execution.decision with input as payer
		with time.now_ns as 1768039200000000000
		with data.governance.catalog.actions as weekends
	saturday.allow == true
	monday := execution.decision with input as payer
		with time.now_ns as monday_10
		with data.governance.catalog.actions as weekends
	monday == {"allow": false, "reasons": ["outside_time_window"]}
}

# Several reasons at once come sorted.

test_deny_lists_every_reason_sorted if {
	bad := object.union(with_args({"amount": 900000}), {"request": {"resource": "account:7"}})
	d := execution.decision with input as bad with time.now_ns as 1768039200000000000
	d == {"allow": false, "reasons": ["amount_over_limit", "outside_time_window", "resource_not_owned"]}
}

# Other catalog actions.

test_allow_tickets_create_for_service_with_log_args if {
	ticket := {
		"identity": {"id": "service:crm", "kind": "service", "status": "active", "attributes": {}},
		"request": {"action": "tickets.create", "resource": "queue:support", "args": {"title": "x"}},
	}
	d := execution.decision with input as ticket
	d == {"allow": true, "reasons": [], "obligations": {"log_args": true}}
}

test_db_query_needs_the_db_attribute_and_an_owned_resource if {
	reader := {
		"identity": {"kind": "agent", "status": "active", "attributes": {"db": "read", "owns": ["db:analytics"]}},
		"request": {"action": "db.query", "resource": "db:analytics", "args": {"sql": "select 1"}},
	}
	allowed := execution.decision with input as reader
	allowed == {"allow": true, "reasons": [], "obligations": {"log_args": true}}
	other := execution.decision with input as object.union(reader, {"request": {"resource": "db:billing"}})
	other == {"allow": false, "reasons": ["resource_not_owned"]}
	stranger := execution.decision with input as json.remove(reader, ["identity/attributes/db"])
	stranger == {"allow": false, "reasons": ["action_not_allowed"]}
}

test_action_obligations_override_the_tiers if {
	quiet := object.union(data.governance.catalog.actions, {"payments.transfer": {"obligations": {"log_args": false}}})
	d := execution.decision with input as payer
		with time.now_ns as monday_10
		with data.governance.catalog.actions as quiet
	d.obligations == {"approval_ticket_required": true, "log_args": false}
}

# The default stays a deny when no rule decides.

test_default_is_policy_denied if {
	d := execution.decision with input as demo_input with execution.denials as set()
		with execution.action_allowed as false
	d == {"allow": false, "reasons": ["policy_denied"]}
}
