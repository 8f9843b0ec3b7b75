#!/usr/bin/env python3
"""An independent Release Ledger client: DSSE, hashes, proofs and checkpoints from the specs.

Nothing here comes from the Rust code. The client compiles the .proto at run time, signs DSSE
envelopes with its own Ed25519 key, and recomputes from docs/format.md everything the server
reports: payloadHash, entryHash, the hash chain, the Merkle root, inclusion and consistency
proofs, and the C2SP signed-note checkpoint signature. Any disagreement is a failure.

Steps, against a fresh tenant:
  1. register a new agent key (AgentKeyRegistered, signed with the admin key)      seq 0
  2. append one event, then retry it (must come back as a duplicate)               seq 1
  3. append an atomic batch of three events                                         seq 2..4
  4. read every entry back (GetEntry by seq and by eventId, Read) and compare bytes/hashes
  5. GetInfo, ListKeys, GetCheckpoint (newest and at size 2): verify the signed notes,
     the root, inclusion proofs of every seq and a consistency proof 2 -> 5
  6. a corrupted signature must be UNAUTHENTICATED, malformed JSON INVALID_ARGUMENT, and
     neither may change the log

Prints one JSON summary line on stdout; exits 1 with "dsse_client: FAIL: ..." on stderr on any
mismatch, 2 on bad usage.

Usage: dsse_client.py --server HOST:PORT --admin-key PATH --tenant NAME --proto-dir PATH
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import importlib
import json
import os
import struct
import sys
import tempfile
import uuid

import blake3
import grpc

import ledger_auth
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

PAYLOAD_TYPE = "application/vnd.release-ledger.event.v1+json"
PROTO_FILE = "release_ledger/v1/ledger.proto"
ENTRY_DOMAIN = b"release-ledger/entry/v1"
GENESIS_PREV_HASH = bytes(32)
RPC_TIMEOUT_SECONDS = 30.0
AGENT_ID = "interop-agent"
EVENT_TYPES = ["TestsPassed", "CoverageVerified", "SecurityGateStatus"]


class Mismatch(Exception):
    """The server disagrees with the specification."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Mismatch(message)


def expect_eq(actual, expected, what: str) -> None:
    if actual != expected:
        raise Mismatch(f"{what}: server has {show(actual)}, expected {show(expected)}")


def show(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return value.hex() if len(value) <= 64 else f"{len(value)} bytes {bytes(value[:32]).hex()}..."
    return repr(value)


# --- DSSE -------------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 Pre-Authentication Encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def raw_public_key(key: ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: ed25519.Ed25519PrivateKey) -> str:
    """DSSE keyid of a Release Ledger key: lowercase hex SHA-256 of the raw public key."""
    return hashlib.sha256(raw_public_key(key)).hexdigest()


class SignedEnvelope:
    """A DSSE envelope this client built and signed."""

    def __init__(self, payload: bytes, key: ed25519.Ed25519PrivateKey, corrupt: bool = False):
        self.payload_type = PAYLOAD_TYPE
        self.payload = payload
        self.keyid = key_id(key)
        sig = bytearray(key.sign(pae(self.payload_type, payload)))
        if corrupt:
            sig[0] ^= 0x01
        self.sig = bytes(sig)

    def storage_bytes(self) -> bytes:
        """The canonical storage encoding of docs/format.md ("Envelope")."""
        out = bytearray([1])
        type_bytes = self.payload_type.encode("utf-8")
        out += struct.pack(">I", len(type_bytes)) + type_bytes
        out += struct.pack(">I", len(self.payload)) + self.payload
        out += struct.pack(">H", 1)
        keyid = self.keyid.encode("ascii")
        out += struct.pack(">H", len(keyid)) + keyid
        out += struct.pack(">H", len(self.sig)) + self.sig
        return bytes(out)

    def payload_hash(self) -> bytes:
        return blake3.blake3(self.storage_bytes()).digest()

    def to_pb(self, pb):
        return pb.Envelope(
            payload_type=self.payload_type,
            payload=self.payload,
            signatures=[pb.Signature(keyid=self.keyid, sig=self.sig)],
        )


def entry_hash(seq: int, recorded_at: int, prev_hash: bytes, payload_hash: bytes) -> bytes:
    return blake3.blake3(ENTRY_DOMAIN + struct.pack(">QQ", seq, recorded_at) + prev_hash + payload_hash).digest()


# --- Merkle tree (RFC 6962 SHA-256, RFC 9162 proof verification; leaf input: the entry hash) --


def leaf_hash(entry_hash_: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry_hash_).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(entry_hashes: list[bytes]) -> bytes:
    n = len(entry_hashes)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaf_hash(entry_hashes[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(merkle_root(entry_hashes[:k]), merkle_root(entry_hashes[k:]))


def verify_inclusion(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]) -> bool:
    """RFC 9162 section 2.1.4.2."""
    if first == 0 or first > second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first & (first - 1) == 0:
        path = [first_root] + path
    if not path:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# --- C2SP signed note -------------------------------------------------------------------------


def note_key_id(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4]."""
    return hashlib.sha256(name.encode("utf-8") + b"\n\x01" + public_key).digest()[:4]


def verify_checkpoint_note(note: str, origin: str, ledger_public_key: bytes) -> dict:
    """Verifies the ledger's signature on a tlog-checkpoint note and returns its fields."""
    split = note.rfind("\n\n")
    expect(split > 0, f"checkpoint note has no blank line before its signatures: {note!r}")
    text, signatures = note[: split + 1], note[split + 2 :]
    expect(signatures.endswith("\n") and signatures != "", "checkpoint signature block must end in a newline")
    lines = text[:-1].split("\n")
    # Format v2 writes no extension lines (tlog-checkpoint: NOT RECOMMENDED).
    expect_eq(len(lines), 3, f"checkpoint text lines (origin, size, root): {text!r}")
    expect_eq(lines[0], origin, "checkpoint origin line")
    size_line = lines[1]
    expect(size_line.isdigit() and (size_line == "0" or not size_line.startswith("0")), f"bad size line {size_line!r}")
    fields = {"origin": lines[0], "size": int(size_line), "root": base64.b64decode(lines[2], validate=True)}

    verifier = ed25519.Ed25519PublicKey.from_public_bytes(ledger_public_key)
    want_id = note_key_id(origin, ledger_public_key)
    verified = 0
    for line in signatures[:-1].split("\n"):
        expect(line.startswith("\u2014 "), f"signature line does not start with an em dash: {line!r}")
        name, _, blob_b64 = line[2:].partition(" ")
        blob = base64.b64decode(blob_b64, validate=True)
        if name != origin or len(blob) != 68 or blob[:4] != want_id:
            continue
        try:
            verifier.verify(blob[4:], text.encode("utf-8"))
        except InvalidSignature:
            raise Mismatch(f"checkpoint signature does not verify with the ledger key: {note!r}") from None
        verified += 1
    expect(verified == 1, f"checkpoint has {verified} signatures by the ledger key (key ID {want_id.hex()}): {note!r}")
    return fields


# --- the client -------------------------------------------------------------------------------


def compile_proto(proto_dir: str, out_dir: str):
    from grpc_tools import protoc

    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    args = ["grpc_tools.protoc", f"-I{proto_dir}", f"-I{include}", f"--python_out={out_dir}"]
    args += [f"--grpc_python_out={out_dir}", os.path.join(proto_dir, PROTO_FILE)]
    if protoc.main(args) != 0:
        raise Mismatch(f"protoc failed on {os.path.join(proto_dir, PROTO_FILE)}")
    sys.path.insert(0, out_dir)
    pb = importlib.import_module("release_ledger.v1.ledger_pb2")
    rpc = importlib.import_module("release_ledger.v1.ledger_pb2_grpc")
    return pb, rpc


def load_admin_key(path: str) -> tuple[ed25519.Ed25519PrivateKey, str]:
    """Loads the data dir's PKCS#8 PEM Ed25519 private key with `cryptography`, as any standard
    tool would (it reads the RFC 8410 v1 form that `openssl genpkey` writes). The second value
    names the form ("pkcs8-v1"), which the Rust test asserts."""
    with open(path, "rb") as f:
        pem = f.read()
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError as error:
        raise Mismatch(f"{path}: a standard PKCS#8 reader (cryptography) cannot load it: {error}") from error
    expect(isinstance(key, ed25519.Ed25519PrivateKey), f"{path} is not an Ed25519 private key")
    return key, "pkcs8-v1"


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_object(tenant: str, stream: str, event_type: str, event_id: str, agent: str, data: dict, release: str | None = None) -> dict:
    """An event body, occurring now. The server's event catalogue: release-scoped types must
    name their release, so `release` goes in `releaseId` when given."""
    obj = {
        "tenant": tenant,
        "stream": stream,
        "type": event_type,
        "eventId": event_id,
        "occurredAt": now_rfc3339(),
        "actor": {"agentId": agent},
        "data": data,
    }
    if release is not None:
        obj["releaseId"] = release
    return obj


class Client:
    def __init__(self, args, pb, rpc):
        self.pb = pb
        self.tenant = args.tenant
        self.channel = ledger_auth.channel(args.server)
        self.stub = rpc.LedgerStub(self.channel)
        self.admin, self.admin_key_format = load_admin_key(args.admin_key)
        self.agent = ed25519.Ed25519PrivateKey.generate()
        self.run = uuid.uuid4().hex[:12]
        # What this client signed and the server acknowledged, by seq.
        self.sent: dict[int, SignedEnvelope] = {}
        self.receipts: dict[int, object] = {}
        self.event_ids: dict[int, str] = {}

    def call(self, method: str, request):
        try:
            return getattr(self.stub, method)(request, timeout=RPC_TIMEOUT_SECONDS)
        except grpc.RpcError as e:
            raise Mismatch(f"{method} failed: {e.code().name}: {e.details()}") from None

    def body(self, stream: str, event_type: str, event_id: str, agent: str, data: dict, style: str, release: str | None = None) -> bytes:
        obj = event_object(self.tenant, stream, event_type, event_id, agent, data, release)
        # Deliberately non-canonical JSON in varied styles: the server must keep the bytes as signed.
        if style == "pretty":
            return (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        if style == "compact":
            return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        return json.dumps(obj, separators=(" , ", " : "), ensure_ascii=False, sort_keys=True).encode("utf-8")

    def event(self, envelope: SignedEnvelope, expected_version=None):
        return self.pb.AppendEvent(envelope=envelope.to_pb(self.pb), expected_version=expected_version)

    def check_receipt(self, receipt, seq: int, envelope: SignedEnvelope, event_id: str, duplicate: bool = False):
        expect_eq(receipt.tenant, self.tenant, f"receipt tenant of seq {seq}")
        expect_eq(receipt.seq, seq, f"receipt seq of event {event_id}")
        expect_eq(receipt.duplicate, duplicate, f"receipt duplicate flag of seq {seq}")
        expect_eq(len(receipt.entry_hash), 32, f"receipt entry hash length of seq {seq}")
        expect(receipt.recorded_at_unix_nanos > 0, f"receipt of seq {seq} has recordedAt {receipt.recorded_at_unix_nanos}")
        if not duplicate:
            self.sent[seq], self.receipts[seq], self.event_ids[seq] = envelope, receipt, event_id

    def register_agent(self):
        agent_public = base64.b64encode(raw_public_key(self.agent)).decode("ascii")
        data = {"agentId": AGENT_ID, "publicKey": agent_public, "roles": ["QA"], "eventTypes": EVENT_TYPES}
        event_id = f"reg-{key_id(self.agent)}"
        envelope = SignedEnvelope(self.body("keys", "AgentKeyRegistered", event_id, "admin", data, "compact"), self.admin)
        receipt = self.call("Append", self.pb.AppendRequest(event=self.event(envelope))).receipt
        expect(receipt.seq == 0, f"tenant {self.tenant!r} already has {receipt.seq} entries: pass a new tenant")
        self.check_receipt(receipt, 0, envelope, event_id)

    def append_single(self):
        event_id = f"single-{self.run}"
        data = {"module": "interop", "version": "1.0.0", "suite": "interop", "passed": 12, "failed": 0, "notes": "grüße ✓ \u2028 \"quoted\""}
        payload = self.body(f"release/{self.run}", "TestsPassed", event_id, AGENT_ID, data, "pretty", release=self.run)
        envelope = SignedEnvelope(payload, self.agent)
        request = self.pb.AppendRequest(event=self.event(envelope, self.pb.ExpectedVersion(no_stream=True)))
        self.check_receipt(self.call("Append", request).receipt, 1, envelope, event_id)
        # The same event again is an idempotent retry: the original receipt, marked duplicate.
        again = self.call("Append", self.pb.AppendRequest(event=self.event(envelope))).receipt
        self.check_receipt(again, 1, envelope, event_id, duplicate=True)
        expect_eq(again.entry_hash, self.receipts[1].entry_hash, "entry hash of the duplicate receipt")
        expect_eq(again.recorded_at_unix_nanos, self.receipts[1].recorded_at_unix_nanos, "recordedAt of the duplicate")

    def append_batch(self):
        events, envelopes, ids = [], [], []
        # Catalogue-valid data that still spans JSON's value kinds (string, float, int, null, bool),
        # each stored exactly as signed.
        module = {"module": "interop", "version": "1.0.0"}
        batch = [
            ("CoverageVerified", "compact", {**module, "percent": 2.5}),
            ("TestsPassed", "spaced", {**module, "suite": "batch", "passed": 1, "failed": 0, "notes": None}),
            ("SecurityGateStatus", "pretty", {**module, "status": "Passed", "cveSeverity": "None", "imageSigned": True, "sbomPresent": True, "licenseCompliant": False}),
        ]
        for i, (event_type, style, data) in enumerate(batch):
            event_id = f"batch-{self.run}-{i}"
            if "notes" not in data:
                data["notes"] = hashlib.sha256(f"{self.run}-{i}".encode()).hexdigest()
            envelope = SignedEnvelope(self.body(f"release/{self.run}", event_type, event_id, AGENT_ID, data, style, release=self.run), self.agent)
            expected = self.pb.ExpectedVersion(exact=1) if i == 0 else None
            events.append(self.event(envelope, expected))
            envelopes.append(envelope)
            ids.append(event_id)
        receipts = self.call("AppendBatch", self.pb.AppendBatchRequest(events=events)).receipts
        expect_eq(len(receipts), 3, "number of AppendBatch receipts")
        for i, receipt in enumerate(receipts):
            self.check_receipt(receipt, 2 + i, envelopes[i], ids[i])
        recorded = [r.recorded_at_unix_nanos for r in receipts]
        expect(recorded == sorted(recorded), f"batch recordedAt decreases: {recorded}")

    def check_entry(self, entry, seq: int, prev_hash: bytes, where: str) -> bytes:
        sent, receipt = self.sent[seq], self.receipts[seq]
        expect_eq(entry.tenant, self.tenant, f"{where}: tenant")
        expect_eq(entry.seq, seq, f"{where}: seq")
        expect_eq(entry.WhichOneof("body"), "envelope", f"{where}: body")
        envelope = entry.envelope
        expect_eq(envelope.payload_type, sent.payload_type, f"{where}: payloadType")
        expect_eq(bytes(envelope.payload), sent.payload, f"{where}: payload bytes (must be exactly as signed)")
        expect_eq(len(envelope.signatures), 1, f"{where}: signature count")
        expect_eq(envelope.signatures[0].keyid, sent.keyid, f"{where}: keyid")
        expect_eq(bytes(envelope.signatures[0].sig), sent.sig, f"{where}: signature bytes")
        expect_eq(entry.recorded_at_unix_nanos, receipt.recorded_at_unix_nanos, f"{where}: recordedAt vs receipt")
        expect_eq(bytes(entry.prev_hash), prev_hash, f"{where}: prevHash (entry hash of seq {seq - 1})")
        expect_eq(bytes(entry.payload_hash), sent.payload_hash(), f"{where}: payloadHash = BLAKE3(envelope storage bytes)")
        computed = entry_hash(seq, entry.recorded_at_unix_nanos, prev_hash, sent.payload_hash())
        expect_eq(bytes(entry.entry_hash), computed, f"{where}: entryHash recomputed per docs/format.md")
        expect_eq(bytes(receipt.entry_hash), computed, f"receipt of seq {seq}: entryHash recomputed per docs/format.md")
        return computed

    def read_back(self) -> list[bytes]:
        hashes, prev, last_recorded = [], GENESIS_PREV_HASH, 0
        for seq in sorted(self.sent):
            by_seq = self.call("GetEntry", self.pb.GetEntryRequest(tenant=self.tenant, seq=seq))
            computed = self.check_entry(by_seq, seq, prev, f"GetEntry(seq={seq})")
            by_id = self.call("GetEntry", self.pb.GetEntryRequest(tenant=self.tenant, event_id=self.event_ids[seq]))
            self.check_entry(by_id, seq, prev, f"GetEntry(eventId={self.event_ids[seq]})")
            expect(by_seq.recorded_at_unix_nanos >= last_recorded, f"recordedAt decreases at seq {seq}")
            last_recorded = by_seq.recorded_at_unix_nanos
            hashes.append(computed)
            prev = computed
        streamed = list(self.stub.Read(self.pb.ReadRequest(tenant=self.tenant, from_seq=0), timeout=RPC_TIMEOUT_SECONDS))
        expect_eq([e.seq for e in streamed], sorted(self.sent), "seqs streamed by Read")
        prev = GENESIS_PREV_HASH
        for entry in streamed:
            prev = self.check_entry(entry, entry.seq, prev, f"Read seq {entry.seq}")
        return hashes

    def check_info_and_keys(self):
        info = self.call("GetInfo", self.pb.GetInfoRequest())
        expect_eq(bytes(info.admin_public_key), raw_public_key(self.admin), "GetInfo admin_public_key vs admin.pem")
        expect_eq(info.admin_key_id, key_id(self.admin), "GetInfo admin_key_id")
        expect_eq(len(info.ledger_public_key), 32, "GetInfo ledger_public_key length")
        expect_eq(info.ledger_key_id, hashlib.sha256(bytes(info.ledger_public_key)).hexdigest(), "GetInfo ledger_key_id")
        expect(info.origin_prefix != "", "GetInfo origin_prefix is empty")
        keys = self.call("ListKeys", self.pb.ListKeysRequest(tenant=self.tenant)).keys
        mine = [k for k in keys if k.key_id == key_id(self.agent)]
        expect_eq(len(mine), 1, f"ListKeys records of key {key_id(self.agent)}")
        record = mine[0]
        expect_eq(record.agent_id, AGENT_ID, "ListKeys agent_id")
        expect_eq(base64.b64decode(record.public_key), raw_public_key(self.agent), "ListKeys public_key")
        expect_eq(list(record.roles), ["QA"], "ListKeys roles")
        expect_eq(list(record.event_types), EVENT_TYPES, "ListKeys event_types")
        expect_eq(record.registered_at_seq, 0, "ListKeys registered_at_seq")
        expect(not record.HasField("revoked_at_seq"), "ListKeys: the new key is marked revoked")
        return info

    def check_checkpoint(self, checkpoint, info, hashes: list[bytes], where: str) -> bytes:
        origin = f"{info.origin_prefix}/{self.tenant}"
        note = verify_checkpoint_note(checkpoint.note, origin, bytes(info.ledger_public_key))
        size = note["size"]
        expect(0 < size <= len(hashes), f"{where}: size {size} outside 1..{len(hashes)}")
        root = merkle_root(hashes[:size])
        expect_eq(note["root"], root, f"{where}: signed root vs Merkle root recomputed over the entry hashes")
        expect_eq(checkpoint.origin, origin, f"{where}: origin field")
        expect_eq(checkpoint.size, size, f"{where}: size field vs note")
        expect_eq(bytes(checkpoint.root_hash), root, f"{where}: root_hash field vs note")
        return root

    def check_proofs(self, info, hashes: list[bytes]) -> dict:
        size = len(hashes)
        newest = self.call("GetCheckpoint", self.pb.GetCheckpointRequest(tenant=self.tenant))
        expect_eq(newest.size, size, "newest checkpoint size")
        root = self.check_checkpoint(newest, info, hashes, "GetCheckpoint(newest)")
        for seq in range(size):
            proof = self.call("GetInclusionProof", self.pb.GetInclusionProofRequest(tenant=self.tenant, seq=seq))
            expect_eq(proof.tree_size, size, f"inclusion proof of seq {seq}: tree size")
            expect_eq(bytes(proof.entry_hash), hashes[seq], f"inclusion proof of seq {seq}: entry hash")
            path = [bytes(p) for p in proof.path]
            expect(verify_inclusion(seq, size, leaf_hash(hashes[seq]), path, root), f"inclusion proof of seq {seq} does not verify (RFC 9162) against the signed root")
            if proof.HasField("checkpoint"):
                expect_eq(proof.checkpoint.note, newest.note, f"inclusion proof of seq {seq}: checkpoint note")
        # The registration, the single event and the batch were three commits: checkpoints at 1, 2, 5.
        old = self.call("GetCheckpoint", self.pb.GetCheckpointRequest(tenant=self.tenant, size=2))
        old_root = self.check_checkpoint(old, info, hashes, "GetCheckpoint(size=2)")
        expect_eq(old.size, 2, "GetCheckpoint(size=2) size")
        consistency = self.call("GetConsistencyProof", self.pb.GetConsistencyProofRequest(tenant=self.tenant, old_size=2, new_size=size))
        path = [bytes(p) for p in consistency.path]
        expect(verify_consistency(2, size, old_root, root, path), f"consistency proof 2 -> {size} does not verify (RFC 9162)")
        return {"note": newest.note, "root": root}

    def expect_rejected(self, envelope: SignedEnvelope, code, what: str) -> str:
        try:
            self.stub.Append(self.pb.AppendRequest(event=self.event(envelope)), timeout=RPC_TIMEOUT_SECONDS)
        except grpc.RpcError as e:
            expect(e.code() == code, f"{what}: server answered {e.code().name} ({e.details()}), expected {code.name}")
            return e.code().name
        raise Mismatch(f"{what}: server accepted it, expected {code.name}")

    def check_rejections(self, size: int, newest_note: str) -> dict:
        event_id = f"badsig-{self.run}"
        data = {"module": "interop", "version": "1.0.0", "suite": "rejected", "passed": 1, "failed": 0}
        payload = self.body(f"release/{self.run}", "TestsPassed", event_id, AGENT_ID, data, "compact", release=self.run)
        bad_sig = self.expect_rejected(SignedEnvelope(payload, self.agent, corrupt=True), grpc.StatusCode.UNAUTHENTICATED, "corrupted signature")
        malformed = b'{"tenant": "' + self.tenant.encode() + b'", "stream": '
        bad_json = self.expect_rejected(SignedEnvelope(malformed, self.agent), grpc.StatusCode.INVALID_ARGUMENT, "malformed JSON")
        after = self.call("GetCheckpoint", self.pb.GetCheckpointRequest(tenant=self.tenant))
        expect_eq(after.size, size, "log size after the rejected appends")
        expect_eq(after.note, newest_note, "newest checkpoint after the rejected appends")
        try:
            self.stub.GetEntry(self.pb.GetEntryRequest(tenant=self.tenant, event_id=event_id), timeout=RPC_TIMEOUT_SECONDS)
            raise Mismatch("the event with the corrupted signature can be read back")
        except grpc.RpcError as e:
            expect(e.code() == grpc.StatusCode.NOT_FOUND, f"GetEntry of the rejected event: {e.code().name}, expected NOT_FOUND")
        return {"corruptedSignature": bad_sig, "malformedJson": bad_json}


def self_test() -> None:
    # The worked example of the DSSE protocol document.
    expect_eq(pae("http://example.com/HelloWorld", b"hello world"), b"DSSEv1 29 http://example.com/HelloWorld 11 hello world", "PAE self-test")
    expect_eq(pae("", b""), b"DSSEv1 0  0 ", "PAE self-test (empty)")
    # The RFC 9162 verifiers against proofs generated here from the RFC 6962 definitions.
    hashes = [blake3.blake3(bytes([i])).digest() for i in range(9)]
    for n in range(1, len(hashes) + 1):
        root = merkle_root(hashes[:n])
        for m in range(n):
            path = rfc6962_path(m, hashes[:n])
            expect(verify_inclusion(m, n, leaf_hash(hashes[m]), path, root), f"inclusion self-test {m} in {n}")
            expect(not verify_inclusion(m, n, leaf_hash(hashes[m - 1]), path, root), f"inclusion self-test {m} in {n} (wrong leaf)")
            if m > 0:
                proof = rfc6962_proof(m, hashes[:n])
                old_root = merkle_root(hashes[:m])
                expect(verify_consistency(m, n, old_root, root, proof), f"consistency self-test {m} -> {n}")
                expect(not verify_consistency(m, n, leaf_hash(hashes[0]) if m > 1 else root, root, proof), f"consistency self-test {m} -> {n} (wrong old root)")


def rfc6962_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1 (self-test only)."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return rfc6962_path(m, leaves[:k]) + [merkle_root(leaves[k:])]
    return rfc6962_path(m - k, leaves[k:]) + [merkle_root(leaves[:k])]


def rfc6962_proof(m: int, leaves: list[bytes], complete: bool = True) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 6962 section 2.1.2 (self-test only)."""
    n = len(leaves)
    if m == n:
        return [] if complete else [merkle_root(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return rfc6962_proof(m, leaves[:k], complete) + [merkle_root(leaves[k:])]
    return rfc6962_proof(m - k, leaves[k:], False) + [merkle_root(leaves[:k])]

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="gRPC address, host:port")
    parser.add_argument("--admin-key", required=True, help="the data dir's keys/admin.pem (PKCS#8 PEM)")
    parser.add_argument("--tenant", required=True, help="a tenant with no events yet")
    parser.add_argument("--proto-dir", required=True, help=f"the directory holding {PROTO_FILE}")
    args = parser.parse_args()
    try:
        self_test()
        with tempfile.TemporaryDirectory(prefix="release-ledger-proto-") as out_dir:
            pb, rpc = compile_proto(args.proto_dir, out_dir)
            client = Client(args, pb, rpc)
            grpc.channel_ready_future(client.channel).result(timeout=RPC_TIMEOUT_SECONDS)
            client.register_agent()
            client.append_single()
            client.append_batch()
            hashes = client.read_back()
            info = client.check_info_and_keys()
            proofs = client.check_proofs(info, hashes)
            rejected = client.check_rejections(len(hashes), proofs["note"])
            client.channel.close()
    except Mismatch as e:
        print(f"dsse_client: FAIL: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"dsse_client: FAIL: {e}", file=sys.stderr)
        return 1
    except grpc.FutureTimeoutError:
        print(f"dsse_client: FAIL: no gRPC connection to {args.server} within {RPC_TIMEOUT_SECONDS}s", file=sys.stderr)
        return 1
    summary = {
        "ok": True,
        "tenant": args.tenant,
        "entries": len(hashes),
        "seqs": sorted(client.sent),
        "agentKeyId": key_id(client.agent),
        "entryHashes": [h.hex() for h in hashes],
        "checkpoint": {"size": len(hashes), "root": proofs["root"].hex(), "signatureVerified": True},
        "inclusionProofsVerified": len(hashes),
        "consistencyProofVerified": [2, len(hashes)],
        "rejected": rejected,
        "serverVersion": info.server_version,
        "adminKeyFormat": client.admin_key_format,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
