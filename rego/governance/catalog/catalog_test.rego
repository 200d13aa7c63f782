# METADATA
# title: Catalog checks
# description: |
#   Invariants of data.governance.catalog (data.json beside this file), so that a
#   team editing the catalog learns at opa test time, not at decision time, that an
#   entry names a tier that does not exist or a cap that is not an integer.
package governance.catalog_test

import data.governance.catalog

kinds := {"agent", "service", "executor", "human"}

days := {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

test_every_action_names_a_defined_tier if {
	every name, entry in catalog.actions {
		is_string(name)
		catalog.tiers[entry.tier]
	}
}

test_every_action_lists_known_kinds if {
	every entry in catalog.actions {
		count(entry.kinds) > 0
		every kind in entry.kinds {
			kind in kinds
		}
	}
}

test_requirements_are_objects_of_scalars if {
	every entry in catalog.actions {
		every value in object.get(entry, "requires", {}) {
			not is_object(value)
			not is_array(value)
		}
	}
}

test_ownership_scoped_is_a_boolean_when_given if {
	every entry in catalog.actions {
		is_boolean(object.get(entry, "ownership_scoped", true))
	}
}

test_caps_are_non_negative_integers if {
	caps := array.concat([entry.amount_cap | some entry in catalog.actions; entry.amount_cap], [tier.amount_cap | some tier in catalog.tiers; tier.amount_cap])
	count(caps) > 0
	every cap in caps {
		is_number(cap)
		cap >= 0
		cap == floor(cap)
	}
}

test_windows_are_well_formed if {
	windows := array.concat([entry.window | some entry in catalog.actions; entry.window], [tier.window | some tier in catalog.tiers; tier.window])
	count(windows) > 0
	every window in windows {
		count(window.days) > 0
		every day in window.days {
			day in days
		}
		0 <= window.from_hour
		window.from_hour < window.to_hour
		window.to_hour <= 24
	}
}

test_obligations_are_objects if {
	every tier in catalog.tiers {
		is_object(object.get(tier, "obligations", {}))
	}
	every entry in catalog.actions {
		is_object(object.get(entry, "obligations", {}))
	}
}

test_demo_echo_is_low_tier_for_agents if {
	catalog.actions["demo.echo"].tier == "low"
	catalog.actions["demo.echo"].kinds == ["agent"]
	count(catalog.tiers.low.obligations) == 0
}
