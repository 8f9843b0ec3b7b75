"""Reads Release Ledger exports with pyarrow alone (no Rust) and checks them from the specs.

    check_export.py ROWS FILE...

For each FILE (Arrow IPC file or Parquet): the row count is ROWS, every column has the type of
docs/export.md, the metadata names the table, tenant and range, and every entry's DSSE signature
verifies (PAE over payloadType and payload, Ed25519) with a key taken from the export itself:
the admin or ledger key of the metadata, or the publicKey of an AgentKeyRegistered event earlier
in the file (keyid = hex SHA-256 of the raw key). Redacted rows carry no payload and are
counted, not checked. Prints one JSON summary line; exits non-zero on the first mismatch.
"""

import base64
import hashlib
import json
import sys

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TS = pa.timestamp("ns", tz="UTC")
ENTRY_TYPES = {
    "seq": pa.uint64(),
    "tenant": pa.string(),
    "recordedAt": TS,
    "eventId": pa.string(),
    "stream": pa.string(),
    "type": pa.string(),
    "releaseId": pa.string(),
    "traceId": pa.string(),
    "agentId": pa.string(),
    "keyId": pa.string(),
    "payloadType": pa.string(),
    "payload": pa.binary(),
    "signature": pa.binary(64),
    "prevHash": pa.binary(32),
    "payloadHash": pa.binary(32),
    "entryHash": pa.binary(32),
    "redactedBy": pa.uint64(),
}


def fail(message):
    print(json.dumps({"ok": False, "error": message}))
    sys.exit(1)


def read(path):
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"ARROW1":
        return ipc.open_file(path).read_all()
    if magic[:4] == b"PAR1":
        return pq.read_table(path)
    fail(f"{path}: neither an Arrow IPC file nor Parquet")


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def key_id(raw):
    return hashlib.sha256(raw).hexdigest()


def check(path, rows):
    table = read(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get("release-ledger.table") != "entries":
        fail(f"{path}: metadata table is {meta.get('release-ledger.table')!r}")
    if table.num_rows != rows:
        fail(f"{path}: {table.num_rows} rows, expected {rows}")
    got = {field.name: field.type for field in table.schema}
    if list(got) != list(ENTRY_TYPES):
        fail(f"{path}: columns {list(got)}")
    for name, want in ENTRY_TYPES.items():
        if got[name] != want:
            fail(f"{path}: column {name} is {got[name]}, expected {want}")
    if int(meta["release-ledger.to-seq"]) - int(meta["release-ledger.from-seq"]) != rows:
        fail(f"{path}: metadata range does not match the rows")

    keys = {}
    for name in ("release-ledger.admin-public-key", "release-ledger.ledger-public-key"):
        raw = base64.b64decode(meta[name])
        keys[key_id(raw)] = raw
    columns = table.to_pydict()
    verified = redacted = registered = 0
    for i in range(table.num_rows):
        seq = columns["seq"][i]
        payload = columns["payload"][i]
        if payload is None:
            redacted += 1
            continue
        keyid = columns["keyId"][i]
        if keyid not in keys:
            fail(f"{path}: seq {seq}: key {keyid} was not registered earlier in the export")
        try:
            Ed25519PublicKey.from_public_bytes(keys[keyid]).verify(
                columns["signature"][i], pae(columns["payloadType"][i], payload)
            )
        except Exception:
            fail(f"{path}: seq {seq}: the DSSE signature does not verify")
        verified += 1
        body = json.loads(payload)
        if body["type"] != columns["type"][i] or body["eventId"] != columns["eventId"][i]:
            fail(f"{path}: seq {seq}: columns differ from the signed payload")
        if body["type"] == "AgentKeyRegistered":
            raw = base64.b64decode(body["data"]["publicKey"])
            keys[key_id(raw)] = raw
            registered += 1
    return {"file": path, "rows": table.num_rows, "verified": verified, "redacted": redacted, "registered": registered}


def main():
    rows = int(sys.argv[1])
    results = [check(path, rows) for path in sys.argv[2:]]
    print(json.dumps({"ok": True, "files": results}))


if __name__ == "__main__":
    main()
