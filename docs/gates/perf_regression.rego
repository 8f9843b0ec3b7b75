# A performance-regression gate: for every module, the newest perf-baseline report's current
# p99 latency may be at most 10 % above its baseline. Until every module has a report the gate
# is pending (the release is delayed, not rejected).
# Evidence: EvidenceAttached kind "perf-baseline", body {"metric": "p99LatencyMs", "baseline": 120, "current": 126}.
package gates.perf_regression

max_regression := 0.10

newest[m.name] := found[count(found) - 1] if {
	some m in input.release.modules
	found := [e | some e in input.evidence; e.kind == "perf-baseline"; e.module == m.name; e.version == m.version]
	count(found) > 0
}

waiting := [m.name | some m in input.release.modules; not newest[m.name]]

regressions := [sprintf("%s %s %v -> %v", [name, r.body.metric, r.body.baseline, r.body.current]) |
	some name, r in newest
	r.body.current > r.body.baseline * (1 + max_regression)
]

target := sprintf("current <= baseline + %v%%", [max_regression * 100])

result := {
	"verdict": "pending", "code": "PerfRunPending", "target": target,
	"observed": sprintf("no perf-baseline yet for %s", [concat(", ", waiting)]),
} if count(waiting) > 0

result := {"verdict": "fail", "code": "PerfRegression", "target": target, "observed": concat("; ", regressions)} if {
	count(waiting) == 0
	count(regressions) > 0
}

result := {"verdict": "pass", "target": target, "observed": sprintf("%d modules within bounds", [count(newest)])} if {
	count(waiting) == 0
	count(regressions) == 0
}
