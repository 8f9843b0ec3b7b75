#!/usr/bin/env python3
"""DSSE envelopes made by securesystemslib, appended as that library makes them.

securesystemslib (the library in-toto and TUF sign with) computes a key's keyid its own way
(SHA-256 of the key's canonical JSON metadata), not as Release Ledger does (SHA-256 of the raw
public key). DSSE makes keyid an optional, unauthenticated hint, so the ledger accepts any
hint and finds the signer among the keys registered to the agent the signed body names
(README, "DSSE key ids"). This client checks that, against a fresh tenant:

  1. the admin registers an agent key; the admin envelope is made by securesystemslib with the
     keyid set to the ledger's form (root keys are not registered to an agent, so their hint
     must name them);
  2. the agent appends four events whose keyid is securesystemslib's default, empty, the
     ledger's key id in upper case, and the ledger's own form: all are accepted;
  3. every stored envelope (GetEntry) carries the ledger's key id, and still verifies with
     securesystemslib (the keyid is not signed, so normalising it changes no signature);
  4. refusals store nothing: an unregistered key with its default keyid is UNAUTHENTICATED; the
     registered key signing a body that names another agent is UNAUTHENTICATED (the hint-less
     lookup only ever tries the named agent's keys) and, with the key's own id as the hint,
     PERMISSION_DENIED (acting as another agent).

Prints one JSON summary line; exits 1 with "sslib_client: FAIL: ..." on the first mismatch.

Usage: sslib_client.py --server HOST:PORT --admin-key PATH --tenant NAME --proto-dir PATH
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import tempfile
import uuid

import grpc

import ledger_auth
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, Signature, SSlibKey

from dsse_client import PAYLOAD_TYPE, Mismatch, compile_proto, event_object, expect, load_admin_key

AGENT_ID = "sslib-agent"
TIMEOUT = 30.0


def ledger_key_id(signer: CryptoSigner) -> str:
    """Release Ledger's key id: lowercase hex SHA-256 of the raw 32-byte public key."""
    raw = bytes.fromhex(signer.public_key.keyval["public"])
    return hashlib.sha256(raw).hexdigest()


def signer_from_private(private, keyid: str | None = None) -> CryptoSigner:
    public = SSlibKey.from_crypto(private.public_key(), keyid=keyid)
    return CryptoSigner(private, public)


class Client:
    def __init__(self, args, pb, rpc):
        self.pb = pb
        self.tenant = args.tenant
        self.channel = ledger_auth.channel(args.server)
        self.stub = rpc.LedgerStub(self.channel)
        admin, _ = load_admin_key(args.admin_key)
        # The admin key is a root key: its hint must be the ledger's key id.
        admin_raw = admin.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.admin = signer_from_private(admin, keyid=hashlib.sha256(admin_raw).hexdigest())
        # securesystemslib's default keyid (no keyid given).
        self.agent_private = ed25519.Ed25519PrivateKey.generate()
        self.agent = signer_from_private(self.agent_private)
        self.stranger = signer_from_private(ed25519.Ed25519PrivateKey.generate())
        self.run = uuid.uuid4().hex[:12]

    def body(self, event_type: str, event_id: str, agent: str, data: dict, stream: str) -> bytes:
        # The catalogue: signals name their release; key registrations do not.
        release = None if event_type == "AgentKeyRegistered" else self.run
        return json.dumps(event_object(self.tenant, stream, event_type, event_id, agent, data, release)).encode("utf-8")

    def envelope(self, payload: bytes, signer: CryptoSigner, keyid: str | None = None):
        """securesystemslib's envelope as the wire message; `keyid` overrides its hint."""
        envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
        signature = envelope.sign(signer)
        hint = signature.keyid if keyid is None else keyid
        return envelope, self.pb.Envelope(
            payload_type=envelope.payload_type,
            payload=envelope.payload,
            signatures=[self.pb.Signature(keyid=hint, sig=bytes.fromhex(signature.signature))],
        )

    def append(self, wire):
        request = self.pb.AppendRequest(event=self.pb.AppendEvent(envelope=wire))
        return self.stub.Append(request, timeout=TIMEOUT).receipt

    def size(self) -> int:
        return self.stub.GetCheckpoint(self.pb.GetCheckpointRequest(tenant=self.tenant), timeout=TIMEOUT).size

    def refused(self, wire, code: grpc.StatusCode, what: str) -> str:
        before = self.size()
        try:
            self.append(wire)
        except grpc.RpcError as e:
            expect(e.code() == code, f"{what}: {e.code().name} ({e.details()}), expected {code.name}")
            expect(self.size() == before, f"{what}: refused, yet the log grew")
            return e.details()
        raise Mismatch(f"{what}: accepted")

    def run_checks(self) -> dict:
        agent_public = base64.b64encode(bytes.fromhex(self.agent.public_key.keyval["public"])).decode("ascii")
        registration = {"agentId": AGENT_ID, "publicKey": agent_public, "roles": ["QA"], "eventTypes": ["TestsPassed"]}
        _, wire = self.envelope(self.body("AgentKeyRegistered", f"reg-{self.run}", "admin", registration, "keys"), self.admin)
        receipt = self.append(wire)
        expect(receipt.seq == 0, f"tenant {self.tenant!r} already has {receipt.seq} entries: pass a new tenant")

        canonical = ledger_key_id(self.agent)
        expect(self.agent.public_key.keyid != canonical, "securesystemslib's default keyid is the ledger's: nothing tested")
        hints = {
            "securesystemslib-default": None,
            "empty": "",
            "upper-case": canonical.upper(),
            "ledger": canonical,
        }
        stream = f"release/{self.run}"
        accepted = {}
        for n, (name, hint) in enumerate(hints.items()):
            data = {"module": "sslib", "version": "1.0.0", "suite": name, "passed": n + 1, "failed": 0}
            payload = self.body("TestsPassed", f"sslib-{self.run}-{n}", AGENT_ID, data, stream)
            original, wire = self.envelope(payload, self.agent, keyid=hint)
            try:
                receipt = self.append(wire)
            except grpc.RpcError as e:
                raise Mismatch(f"keyid {name} ({wire.signatures[0].keyid!r}): {e.code().name}: {e.details()}") from None
            expect(not receipt.duplicate, f"keyid {name}: a duplicate receipt")
            stored = self.stub.GetEntry(
                self.pb.GetEntryRequest(tenant=self.tenant, seq=receipt.seq), timeout=TIMEOUT
            ).envelope
            expect(stored.payload == payload, f"keyid {name}: the stored payload differs from the signed one")
            expect(
                [s.keyid for s in stored.signatures] == [canonical],
                f"keyid {name}: stored keyid {[s.keyid for s in stored.signatures]}, expected {canonical}",
            )
            # The stored envelope, as securesystemslib sees it, verifies with the agent's key.
            back = Envelope(
                payload=stored.payload,
                payload_type=stored.payload_type,
                signatures={},
            )
            back.signatures[canonical] = Signature(canonical, stored.signatures[0].sig.hex())
            key = SSlibKey.from_crypto(self.agent_private.public_key(), keyid=canonical)
            verified = back.verify([key], 1)
            expect(canonical in verified, f"keyid {name}: securesystemslib does not verify the stored envelope")
            expect(original.pae() == back.pae(), f"keyid {name}: the signed bytes changed")
            accepted[name] = receipt.seq

        # Refusals.
        data = {"module": "sslib", "version": "1.0.0", "suite": "refused", "passed": 1, "failed": 0}
        _, stranger = self.envelope(self.body("TestsPassed", f"x-{self.run}-1", AGENT_ID, data, stream), self.stranger)
        unknown = self.refused(stranger, grpc.StatusCode.UNAUTHENTICATED, "an unregistered key")
        other_body = self.body("TestsPassed", f"x-{self.run}-2", "someone-else", data, stream)
        _, other = self.envelope(other_body, self.agent)
        other_agent = self.refused(other, grpc.StatusCode.UNAUTHENTICATED, "a body naming another agent, no hint")
        _, hinted = self.envelope(other_body, self.agent, keyid=canonical)
        self.refused(hinted, grpc.StatusCode.PERMISSION_DENIED, "a body naming another agent, the key's own hint")
        return {"accepted": accepted, "unknownKey": unknown, "otherAgent": other_agent, "size": self.size()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--admin-key", required=True)
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--proto-dir", required=True)
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory(prefix="release-ledger-proto-") as out_dir:
            pb, rpc = compile_proto(args.proto_dir, out_dir)
            client = Client(args, pb, rpc)
            grpc.channel_ready_future(client.channel).result(timeout=TIMEOUT)
            result = client.run_checks()
            client.channel.close()
    except Mismatch as e:
        print(f"sslib_client: FAIL: {e}", file=sys.stderr)
        return 1
    except grpc.FutureTimeoutError:
        print(f"sslib_client: FAIL: no gRPC connection to {args.server}", file=sys.stderr)
        return 1
    print(json.dumps({"ok": True, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
