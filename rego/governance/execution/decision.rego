# METADATA
# title: Execution decisions
# description: |
#   Whether an identity may run an action, the default policy a team starts from.
#   The control plane asks for data.governance.execution.decision and denies
#   unless the answer is an object with a boolean allow, a list of reasons and,
#   if present, an object of obligations (DESIGN.md section 5).
#
#   What may run is listed in the action catalog, bundle data at
#   data.governance.catalog (rego/governance/catalog/data.json). Each action
#   names a risk tier and the identity kinds that may ask for it; it may require
#   identity attributes, be scoped to resources the identity owns, carry an
#   amount cap and a time window (from its tier, or its own to override the
#   tier's), and its tier's obligations are copied into the grant.
#
#   Reasons this policy can emit (docs/reasons.md, "Reasons of the default policy"):
#   - identity_not_active: no identity, or its status is not "active".
#   - action_not_allowed: the action is not in the catalog, the identity's kind
#     is not listed for it, or the identity lacks an attribute it requires.
#   - policy_denied: the default, when no rule decided (should not happen).
#   Only for an active identity entitled to the action:
#   - attribute_missing: the action is ownership-scoped and the identity has no owns list.
#   - resource_not_owned: the resource is not in the identity's owns list.
#   - amount_invalid: the action has an amount cap and args.amount is not a
#     non-negative integer (minor units).
#   - amount_over_limit: args.amount is over the cap.
#   - outside_time_window: the action has a window and now (UTC) is outside it.
#
#   Obligations (only on allows, omitted when empty; an executor that does not
#   understand one must not run):
#   - log_args: record the arguments with the outcome (tiers medium and high).
#   - approval_ticket_required: run only with a human approval ticket (tier high).
#
#   References to input are type-checked against rego/schemas/input.json
#   (opa check --strict --schema rego/schemas rego).
# schemas:
#   - input: schema.input
package governance.execution

import data.governance.catalog

# METADATA
# title: Decision
# description: |
#   The answer. Anything no rule allows is denied, with reasons; an allow carries
#   the obligations of its tier and action, and no obligations key when there are none.
# entrypoint: true
default decision := {"allow": false, "reasons": ["policy_denied"]}

decision := {"allow": true, "reasons": []} if {
	allowed
	count(obligations) == 0
}

decision := {"allow": true, "reasons": [], "obligations": obligations} if {
	allowed
	count(obligations) > 0
}

decision := {"allow": false, "reasons": sort(denials)} if {
	count(denials) > 0
}

# METADATA
# title: Allowed
# description: An active identity entitled to the action, and nothing to deny.
allowed if {
	count(denials) == 0
	entitled
}

# METADATA
# title: Catalog entry
# description: The catalog's entry for the requested action; undefined for an unknown action.
catalog_entry := catalog.actions[input.request.action]

# METADATA
# title: Risk tier
# description: The tier the action's entry names; undefined if the catalog does not define it.
risk_tier := catalog.tiers[catalog_entry.tier]

# METADATA
# title: Default agent actions
# description: |
#   Actions any active agent may run without further attributes, from the catalog
#   (demo.echo lets a newcomer see an allow end to end).
default_agent_actions contains name if {
	some name, entry in catalog.actions
	"agent" in entry.kinds
	count(object.get(entry, "requires", {})) == 0
}

# METADATA
# title: Action allowed
# description: |
#   The action is in the catalog with a defined tier, the identity's kind is listed
#   for it, and the identity carries every attribute the entry requires. An attribute
#   matches if it equals the required value or is a list holding it.
action_allowed if {
	risk_tier
	input.identity.kind in catalog_entry.kinds
	every name, value in object.get(catalog_entry, "requires", {}) {
		has_attribute(name, value)
	}
}

# METADATA
# title: Has attribute
# description: The identity's attribute name equals value, or is a list holding it.
has_attribute(name, value) if input.identity.attributes[name] == value

has_attribute(name, value) if {
	is_array(input.identity.attributes[name])
	value in input.identity.attributes[name]
}

# METADATA
# title: Entitled
# description: An active identity whose action is allowed; only then do the specific reasons apply.
entitled if {
	input.identity.status == "active"
	action_allowed
}

# METADATA
# title: Obligations
# description: The tier's obligations, overridden key by key by the action's own.
obligations := object.union(
	object.get(risk_tier, "obligations", {}),
	object.get(catalog_entry, "obligations", {}),
)

# METADATA
# title: Ownership-scoped
# description: |
#   The resource must be one the identity owns, unless the entry says
#   "ownership_scoped": false. Missing means scoped: the safe default.
ownership_scoped if object.get(catalog_entry, "ownership_scoped", true) != false

# METADATA
# title: Has an owns list
# description: |
#   The identity's owns attribute is a list. Negated through a rule: with OPA
#   1.22, not is_array(input.x) and not input.x in s are undefined, not true,
#   when input.x is undefined, so the denial would silently not fire.
has_owns_list if is_array(input.identity.attributes.owns)

# METADATA
# title: Resource owned
# description: The requested resource is in the identity's owns list (exact match).
resource_owned if input.request.resource in input.identity.attributes.owns

# METADATA
# title: Amount cap
# description: The action's amount_cap, else its tier's; integer minor units.
amount_cap := cap if {
	cap := catalog_entry.amount_cap
} else := cap if {
	cap := risk_tier.amount_cap
}

# METADATA
# title: Valid amount
# description: args.amount is a non-negative integer (minor units, never a float).
valid_amount if {
	amount := input.request.args.amount
	is_number(amount)
	amount >= 0
	amount == floor(amount)
}

# METADATA
# title: Time window
# description: The action's window, else its tier's; days and hours in UTC, to_hour exclusive.
window := w if {
	w := catalog_entry.window
} else := w if {
	w := risk_tier.window
}

# METADATA
# title: Within window
# description: Now (time.now_ns, UTC) falls on one of the window's days, between its hours.
within_window if {
	now := time.now_ns()
	time.weekday(now) in window.days
	[hour, _, _] := time.clock(now)
	hour >= window.from_hour
	hour < window.to_hour
}

# METADATA
# title: Denials
# description: |
#   Reasons to deny. Missing input denies: an absent identity is not active, an
#   absent action is not allowed. The specific reasons only apply to an active
#   identity entitled to the action, so that a caller who may not ask at all
#   learns nothing about the action's conditions.
denials contains "identity_not_active" if {
	not input.identity.status == "active"
}

denials contains "action_not_allowed" if {
	input.identity.status == "active"
	not action_allowed
}

denials contains "attribute_missing" if {
	entitled
	ownership_scoped
	not has_owns_list
}

denials contains "resource_not_owned" if {
	entitled
	ownership_scoped
	has_owns_list
	not resource_owned
}

denials contains "amount_invalid" if {
	entitled
	amount_cap
	not valid_amount
}

denials contains "amount_over_limit" if {
	entitled
	valid_amount
	input.request.args.amount > amount_cap
}

denials contains "outside_time_window" if {
	entitled
	window
	not within_window
}
