# "DR drill within 90 days": the release needs a passed disaster-recovery drill performed at most
# 90 days before the evaluation (input.evaluation.atNs, the trigger's recordedAt: the only time a
# gate sees, so the auditor re-derives the same verdict years later).
# Evidence: EvidenceAttached kind "dr-drill", body {"performedAt": RFC 3339, "outcome": "passed"}.
package gates.dr_drill_recent

day_ns := ((24 * 60) * 60) * 1000000000

max_age_days := 90

# Ages (ns) of the passed drills, none from the future.
ages := [age |
	some e in input.evidence
	e.kind == "dr-drill"
	e.body.outcome == "passed"
	performed := time.parse_rfc3339_ns(e.body.performedAt)
	performed <= input.evaluation.atNs
	age := input.evaluation.atNs - performed
]

target := sprintf("a passed DR drill within %d days", [max_age_days])

result := {"verdict": "fail", "code": "DrDrillMissing", "target": target, "observed": "no passed drill"} if {
	count(ages) == 0
}

result := {
	"verdict": "fail", "code": "DrDrillStale", "target": target,
	"observed": sprintf("last passed drill %d days ago", [floor(min(ages) / day_ns)]),
} if {
	count(ages) > 0
	min(ages) > max_age_days * day_ns
}

result := {
	"verdict": "pass", "target": target,
	"observed": sprintf("last passed drill %d days ago", [floor(min(ages) / day_ns)]),
} if {
	count(ages) > 0
	min(ages) <= max_age_days * day_ns
}
