#!/usr/bin/env python3
"""Release decisions as in-toto attestations, checked with the in-toto project's own libraries.

Reads an in-toto bundle (JSON Lines of DSSE envelopes) that `release-ledger attestation` wrote
and checks every line with no Release Ledger code involved:

  1. securesystemslib (the library in-toto signs and verifies with) verifies the DSSE envelope
     against the ledger public key (SPKI PEM, keys/ledger.pub), threshold 1;
  2. in-toto-attestation (the reference implementation of the attestation framework) parses the
     payload as a Statement v1 and validates it (type, subjects with digests, predicate);
  3. the predicate parses strictly as the SLSA Verification Summary v1 protobuf once the
     extension fields (named by URIs, as the VSA spec allows) are set aside, and carries every
     field the spec requires, with a verificationResult of PASSED or FAILED and a verifiedLevels
     entry consistent with it.

Prints one JSON summary line (every statement, decoded); exits 1 with
"check_attestation: FAIL: ..." on the first check that fails.

Usage: check_attestation.py --bundle FILE --ledger-pub PEM
       check_attestation.py --pack DIR [--ledger-pub PEM]

With --pack, the statements are an evidence pack's (`release-ledger evidence`): every
DIR/attestations/*.intoto.json, in seq order, checked with DIR/ledger.pub unless --ledger-pub
names the key to trust.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

from cryptography.hazmat.primitives import serialization
from google.protobuf import json_format
from in_toto_attestation.predicates.vsa.v1 import vsa_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

VSA = "https://slsa.dev/verification_summary/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"


def fail(message: str) -> None:
    print(f"check_attestation: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def ledger_key(path: str) -> SSlibKey:
    with open(path, "rb") as f:
        public = serialization.load_pem_public_key(f.read())
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    # The ledger's key id (SHA-256 of the raw key), which its envelopes carry as keyid.
    return SSlibKey.from_crypto(public, keyid=hashlib.sha256(raw).hexdigest())


def check(line_no: int, line: str, key: SSlibKey) -> dict:
    where = f"line {line_no}"
    try:
        envelope = Envelope.from_dict(json.loads(line))
    except Exception as e:  # noqa: BLE001 - any parse failure is the finding
        fail(f"{where}: not a DSSE envelope: {e}")
    if envelope.payload_type != PAYLOAD_TYPE:
        fail(f"{where}: payloadType {envelope.payload_type!r}")
    try:
        envelope.verify([key], 1)
    except Exception as e:  # noqa: BLE001
        fail(f"{where}: the DSSE signature does not verify with the ledger key: {e}")

    payload = json.loads(envelope.payload)
    try:
        proto = json_format.ParseDict(payload, statement_pb2.Statement())
        Statement.copy_from_pb(proto).validate()
    except Exception as e:  # noqa: BLE001
        fail(f"{where}: not a valid in-toto Statement v1: {e}")
    if payload["predicateType"] != VSA:
        fail(f"{where}: predicateType {payload['predicateType']!r}")

    predicate = payload["predicate"]
    standard = {k: v for k, v in predicate.items() if not k.startswith("https://")}
    standard["verifier"] = {k: v for k, v in standard["verifier"].items() if not k.startswith("https://")}
    # The protobuf declares verifiedLevels a single string, the spec an array (in-toto/attestation
    # issue 425, fix in PR 429, not released in 0.9.3; its maintainers: the spec is
    # authoritative). The statement follows the spec; the array is checked by hand below.
    levels = standard.pop("verifiedLevels", None)
    if not isinstance(levels, list) or not levels or not all(isinstance(lvl, str) for lvl in levels):
        fail(f"{where}: verifiedLevels {levels!r} is not a non-empty array of strings")
    try:
        vsa = json_format.ParseDict(standard, vsa_pb2.VerificationSummary())
    except Exception as e:  # noqa: BLE001
        fail(f"{where}: the predicate is not a SLSA VSA v1: {e}")
    required = {
        "verifier.id": vsa.HasField("verifier") and vsa.verifier.id,
        "timeVerified": vsa.HasField("time_verified"),
        "resourceUri": vsa.resource_uri,
        "policy.uri": vsa.HasField("policy") and vsa.policy.uri,
    }
    missing = [name for name, present in required.items() if not present]
    if missing:
        fail(f"{where}: the VSA lacks the required {missing}")
    result = vsa.verification_result
    if result not in ("PASSED", "FAILED"):
        fail(f"{where}: verificationResult {result!r}")
    if (result == "FAILED") != (levels == ["FAILED"]) or any(lvl.startswith("SLSA_") for lvl in levels):
        fail(f"{where}: verifiedLevels {levels} do not fit {result}")
    for i, attestation in enumerate(vsa.input_attestations):
        if not attestation.digest:
            fail(f"{where}: inputAttestations[{i}] has no digest")
    return payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle")
    source.add_argument("--pack")
    parser.add_argument("--ledger-pub")
    args = parser.parse_args()
    if args.pack:
        directory = os.path.join(args.pack, "attestations")
        names = sorted(os.listdir(directory), key=lambda n: int(n.split(".", 1)[0]))
        lines = []
        for name in names:
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                lines.append(f.read().strip())
        key = ledger_key(args.ledger_pub or os.path.join(args.pack, "ledger.pub"))
    else:
        if not args.ledger_pub:
            fail("--bundle needs --ledger-pub")
        key = ledger_key(args.ledger_pub)
        with open(args.bundle, encoding="utf-8") as f:
            lines = [line for line in f.read().splitlines() if line.strip()]
    if not lines:
        fail("the bundle is empty")
    statements = [check(i + 1, line, key) for i, line in enumerate(lines)]
    print(json.dumps({"ok": True, "checked": len(statements), "statements": statements}))


if __name__ == "__main__":
    main()
