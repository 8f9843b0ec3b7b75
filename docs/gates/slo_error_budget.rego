# An SLO error-budget gate: every module the release ships needs an slo-report whose newest
# errorBudgetRemaining (the fraction of the period's budget left) is at least 10 %.
# Evidence: EvidenceAttached kind "slo-report", body {"objective": 99.9, "errorBudgetRemaining": 0.42}.
package gates.slo_error_budget

min_remaining := 0.1

# The newest slo-report of each shipped module version (input.evidence is in log order).
newest[m.name] := found[count(found) - 1] if {
	some m in input.release.modules
	found := [e | some e in input.evidence; e.kind == "slo-report"; e.module == m.name; e.version == m.version]
	count(found) > 0
}

missing := [m.name | some m in input.release.modules; not newest[m.name]]

exhausted := [sprintf("%s has %v left", [name, r.body.errorBudgetRemaining]) |
	some name, r in newest
	r.body.errorBudgetRemaining < min_remaining
]

target := sprintf("every module has >= %v of its error budget left", [min_remaining])

result := {
	"verdict": "fail", "code": "SloReportMissing", "target": target,
	"observed": sprintf("no slo-report for %s", [concat(", ", missing)]),
} if count(missing) > 0

result := {
	"verdict": "fail", "code": "ErrorBudgetExhausted", "target": target,
	"observed": concat("; ", exhausted),
} if {
	count(missing) == 0
	count(exhausted) > 0
}

result := {
	"verdict": "pass", "target": target,
	"observed": concat("; ", [sprintf("%s: %v", [n, r.body.errorBudgetRemaining]) | some n, r in newest]),
} if {
	count(missing) == 0
	count(exhausted) == 0
}
