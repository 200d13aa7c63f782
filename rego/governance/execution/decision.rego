# METADATA
# title: Execution decisions
# description: |
#   Whether an identity may run an action. The control plane asks for
#   data.governance.execution.decision and denies unless the answer is an
#   object with a boolean allow and a list of reasons (DESIGN.md §5).
package governance.execution

# METADATA
# title: Decision
# description: The answer. Anything no rule allows is denied, with reasons.
# entrypoint: true
default decision := {"allow": false, "reasons": ["policy_denied"]}

decision := {"allow": true, "reasons": []} if {
	count(denials) == 0
	action_allowed
}

decision := {"allow": false, "reasons": sort(denials)} if {
	count(denials) > 0
}

# METADATA
# title: Allowed actions
# description: Actions any active agent may run. demo.echo lets newcomers see an allow end to end.
default_agent_actions := {"demo.echo"}

# METADATA
# title: Action allowed
# description: The requested action is one this kind of identity may run.
action_allowed if {
	input.identity.kind == "agent"
	input.request.action in default_agent_actions
}

# METADATA
# title: Denials
# description: Reasons to deny that apply whatever the action. Missing input denies.
denials contains "identity_not_active" if {
	not input.identity.status == "active"
}

denials contains "action_not_allowed" if {
	input.identity.status == "active"
	not action_allowed
}
