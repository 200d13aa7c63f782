# METADATA
# title: Decision-log masking and dropping
# description: |
#   OPA evaluates data.system.log.drop and data.system.log.mask for every
#   decision-log event before buffering it, with the event as input (OPA docs
#   management-decision-logs). Empty by default: nothing is dropped and nothing
#   masked, so the ledger records every decision whole.
#
#   How a team uses them, in its copy of this file:
#   - to keep secrets out of the log, add JSON pointers into the event to
#     masked_pointers, e.g. "/input/request/args/card_number"; OPA erases them
#     and lists them under the event's erased field. A mask rule may also return
#     {"op": "upsert", "path": ..., "value": ...} objects to replace a value.
#   - to not log some decisions at all, add their paths to dropped_paths, e.g.
#     "governance/health/ping", or write another drop rule. A dropped decision
#     never reaches the ledger: the control plane cannot tell it from a lost one,
#     so never drop governance/execution/decision.
# schemas:
#   - input: schema.log_event
package system.log

# METADATA
# title: Masked pointers
# description: JSON pointers into the event that OPA erases before logging. None by default.
masked_pointers := set()

# METADATA
# title: Dropped paths
# description: Decision paths whose events OPA does not log. None by default.
dropped_paths := set()

# METADATA
# title: Mask
# description: What OPA erases from an event before logging it.
# entrypoint: true
mask contains pointer if {
	some pointer in masked_pointers
}

# METADATA
# title: Drop
# description: Whether OPA leaves the event out of the decision log.
# entrypoint: true
default drop := false

drop if input.path in dropped_paths
