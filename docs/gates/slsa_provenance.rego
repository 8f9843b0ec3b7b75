# "SLSA provenance with builder X for every module digest": every module the release ships must
# be pinned by digest, and for each digest there must be an in-toto SLSA provenance attestation,
# signed by a key of this tenant holding the Attestor role (the ledger verified the signature
# when it was attached) and not revoked since, whose builder is the trusted one.
# Evidence: EvidenceAttached kind "slsa-provenance" carrying the attestation (DSSE).
package gates.slsa_provenance

trusted_builder := "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0"

provenance_type := "https://slsa.dev/provenance/v1"

# Digests with a valid provenance from the trusted builder.
proven contains e.subjectDigest.sha256 if {
	some e in input.evidence
	e.kind == "slsa-provenance"
	e.attestation.predicateType == provenance_type
	not e.attestation.signer.revoked
	e.body.predicate.runDetails.builder.id == trusted_builder
}

unpinned := [m.name | some m in input.release.modules; not m.digest.sha256]

unproven := [sprintf("%s@%s", [m.name, m.version]) |
	some m in input.release.modules
	m.digest.sha256
	not proven[m.digest.sha256]
]

target := sprintf("SLSA provenance by %s for every module digest", [trusted_builder])

result := {
	"verdict": "fail", "code": "ModuleNotPinned", "target": target,
	"observed": sprintf("no sha256 digest for %s", [concat(", ", unpinned)]),
} if count(unpinned) > 0

result := {
	"verdict": "fail", "code": "ProvenanceMissing", "target": target,
	"observed": sprintf("no trusted provenance for %s", [concat(", ", unproven)]),
} if {
	count(unpinned) == 0
	count(unproven) > 0
}

result := {"verdict": "pass", "target": target, "observed": sprintf("%d module digests proven", [count(input.release.modules)])} if {
	count(unpinned) == 0
	count(unproven) == 0
}
