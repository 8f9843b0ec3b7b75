#!/usr/bin/env python3
"""An in-toto attestation signed by an independent implementation, for `release-ledger attach`.

Signs an in-toto Statement (a JSON file, its bytes taken as they are) as a DSSE envelope with
securesystemslib (the library in-toto signs with): `Envelope` and an Ed25519 `CryptoSigner`
loaded from a PKCS#8 PEM private key (as `release-ledger keygen` writes it). The signature's
keyid is the key's Release Ledger key id (lowercase hex SHA-256 of the raw 32-byte public key),
which the ledger requires of an attestation's one signature so that it can find the tenant key
(holding the Attestor role) to verify it with. No Release Ledger code is involved.

Writes the envelope (its standard JSON form) to --out, then checks it with securesystemslib's
own verifier, and prints one JSON summary line; exits 1 with "sign_attestation: FAIL: ..." if
anything fails.

Usage: sign_attestation.py --key PEM --statement FILE --out FILE
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"


def fail(message: str) -> None:
    print(f"sign_attestation: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--key", required=True, help="PKCS#8 PEM Ed25519 private key")
    parser.add_argument("--statement", required=True, help="the in-toto Statement (JSON)")
    parser.add_argument("--out", required=True, help="where to write the DSSE envelope (JSON)")
    args = parser.parse_args()

    with open(args.key, "rb") as f:
        private = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(private, ed25519.Ed25519PrivateKey):
        fail(f"{args.key} is not an Ed25519 key")
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = hashlib.sha256(raw).hexdigest()
    public = SSlibKey.from_crypto(private.public_key(), keyid=key_id)
    signer = CryptoSigner(private, public)

    with open(args.statement, "rb") as f:
        payload = f.read()
    statement = json.loads(payload)
    if statement.get("_type") != "https://in-toto.io/Statement/v1":
        fail(f"{args.statement} is not an in-toto Statement v1")

    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    signature = envelope.sign(signer)
    if signature.keyid != key_id:
        fail(f"signed with keyid {signature.keyid}, not the ledger key id {key_id}")
    document = envelope.to_dict()
    with open(args.out, "w") as f:
        json.dump(document, f)

    # securesystemslib verifies what it wrote (threshold 1, this key).
    back = Envelope.from_dict(copy.deepcopy(document))  # from_dict rewrites its argument
    verified = back.verify([public], 1)
    if key_id not in verified:
        fail("securesystemslib does not verify its own envelope")
    print(json.dumps({"ok": True, "keyId": key_id, "payloadSha256": hashlib.sha256(payload).hexdigest()}))


if __name__ == "__main__":
    main()
