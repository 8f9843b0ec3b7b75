#!/usr/bin/env python3
"""The web console's browser crypto (api/src/console/assets/{verify,approve,blake3}.js) in
Debian's headless Chromium, on inputs the real server produced.

Run by api/cli/tests/service/console_crypto.rs, which starts `release-ledger serve`, appends
events, redacts one, and writes --cases: proof.json objects (docs/console.md) for every entry,
the pinned ledger key, another key, and a CLI-generated signing key with an event body to sign.
This script serves the assets and tests/interop/console_crypto.html from a local http.server
(127.0.0.1 is a secure context: WebCrypto works) and checks, in the browser:

- BLAKE3 (the vendored @noble/hashes) against the official test vectors and Python's blake3;
- verifyEntry: every real proof verifies (each step ok); a redacted entry reports step 1
  skipped; a flipped byte of the envelope, prevHash, entryHash, an audit-path hash, the
  checkpoint root, the signature, a wrong pinned key and another tenant each fail exactly the
  steps that read them;
- the entry page end to end (init(): script#ledger-key, ./proof.json, ol#verify-steps,
  #verify-result);
- signEnvelope: the browser's DSSE signature verifies in Python (`cryptography`) over the PAE
  Python builds, under the public key Python reads from the same PEM (the Rust test then appends
  the browser-signed envelope to the real server);
- the approval form (approve.js) against a stand-in console: prepare, the payload shown, the
  signed append (checked here with `cryptography`), the receipt, a refusal from prepare, a
  refusal from append, an encrypted key refused before anything is sent.

Prints one JSON summary line last ({"ok": true, ...}); exits non-zero on any failure.
"""

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "api" / "src" / "console" / "assets"
TEST_PAGE = Path(__file__).resolve().parent / "console_crypto.html"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

# Official BLAKE3 test vectors (github.com/BLAKE3-team/BLAKE3, test_vectors/test_vectors.json):
# input = bytes(i % 251 for i in range(len)); the first 32 bytes of each extended "hash" output.
BLAKE3_VECTORS = {
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    1023: "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
    1024: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
    1025: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
    2048: "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a",
    2049: "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030",
    3072: "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2",
    3073: "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
    4096: "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969",
    4097: "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995",
    5120: "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833",
    5121: "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff",
    6144: "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205",
    6145: "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f",
    7168: "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a",
    7169: "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817",
}
# Longer inputs (more chunks, deeper trees), against Python's blake3 package.
BLAKE3_MORE = [8192, 8193, 16384, 31744, 102400, 1 << 20]

STEPS = ["payload-hash", "entry-hash", "inclusion", "signature", "tree-size"]
EVENT_PAYLOAD_TYPE = "application/vnd.release-ledger.event.v1+json"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def vector_input(length):
    return bytes(i % 251 for i in range(length))


def pae(payload_type, payload):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def flip_hex(text, index=0):
    raw = bytearray(bytes.fromhex(text))
    raw[index] ^= 0x01
    return raw.hex()


def flip_b64(text, index):
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# ---------------------------------------------------------------------------------------------
# The stand-in console: the assets, the test page, entry pages and a mock of the approval API


class Site:
    def __init__(self, cases, signer_public):
        self.cases = cases
        self.tenant = cases["tenant"]
        self.proofs = {p["seq"]: p for p in cases["proofs"] if p["inclusion"]["treeSize"] == cases["size"]}
        self.signer_public = signer_public  # cryptography Ed25519PublicKey
        self.signer_key_id = hashlib.sha256(signer_public.public_bytes_raw()).hexdigest()
        self.prepared = {}  # base64 payload -> the prepare request
        self.requests = []  # (path, json body)
        self.appended = []
        self.lock = threading.Lock()

    def entry_page(self, seq):
        key = json.dumps(self.cases["pinnedKey"])
        return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>entry {seq}</title>
<script type="application/json" id="ledger-key">{key}</script></head><body>
<h1>Entry {seq}</h1><p id="verify-result" aria-live="polite">checking…</p><ol id="verify-steps"></ol>
<script type="module" src="/assets/verify.js"></script></body></html>"""

    def release_page(self, release):
        return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{release}</title></head><body>
<form id="approve" data-tenant="{self.tenant}" data-release="{release}">
<input type="file" id="approve-key" name="key">
<select id="approve-role" name="role"><option>Approver</option><option>Nobody</option></select>
<textarea id="approve-comment" name="comment"></textarea>
<button id="approve-submit" type="submit">Approve</button></form>
<pre id="approve-payload"></pre><div id="approve-result"></div>
<script>window.loadedAt = Date.now();</script>
<script type="module" src="/assets/approve.js"></script></body></html>"""

    def prepare(self, body):
        """docs/console.md "Approving": the unsigned event for a registered key, or a refusal."""
        if body.get("keyId") != self.signer_key_id:
            return 200, {"refusal": {"code": "PERMISSION_DENIED", "message": f"key {body.get('keyId')} is not registered"}}
        if body.get("role") == "Nobody":
            return 200, {"refusal": {"code": "PERMISSION_DENIED", "message": "key holds no role Nobody"}}
        event = {
            "tenant": self.tenant,
            "stream": f"release/{body['releaseId']}",
            "type": "ApprovalGranted",
            "eventId": f"approval-{len(self.prepared)}",
            # A server that prepares something else than asked ("swap"): the page must not sign.
            "releaseId": "release-2" if body["comment"] == "swap" else body["releaseId"],
            "actor": {"agentId": "approver", "role": body["role"]},
            "data": {"role": body["role"], "comment": body["comment"], "method": "UI"},
        }
        payload = base64.b64encode(json.dumps(event, separators=(",", ":")).encode()).decode()
        self.prepared[payload] = body
        return 200, {"payloadType": EVENT_PAYLOAD_TYPE, "payload": payload}

    def append(self, envelope):
        """Checks the browser's envelope as the ledger would (signature over the PAE, key id)."""
        from cryptography.exceptions import InvalidSignature

        payload = envelope.get("payload")
        if payload not in self.prepared or envelope.get("payloadType") != EVENT_PAYLOAD_TYPE:
            return 400, {"code": "INVALID_ARGUMENT", "message": "not the prepared payload"}
        signatures = envelope.get("signatures") or []
        if len(signatures) != 1 or signatures[0].get("keyid") != self.signer_key_id:
            return 400, {"code": "INVALID_ARGUMENT", "message": f"signatures {signatures!r}"}
        try:
            self.signer_public.verify(
                base64.b64decode(signatures[0]["sig"]), pae(EVENT_PAYLOAD_TYPE, base64.b64decode(payload))
            )
        except InvalidSignature:
            return 401, {"code": "UNAUTHENTICATED", "message": "signature does not verify"}
        event = json.loads(base64.b64decode(payload))
        if event["data"]["comment"] == "refuse me":
            return 409, {"code": "FAILED_PRECONDITION", "message": "release release-1 is already Approved (stand-in)"}
        self.appended.append(envelope)
        return 200, {"seq": 100 + len(self.appended), "entryHash": "ab" * 32}

    def handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status, body, content_type):
                data = body if isinstance(body, bytes) else body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def send_json(self, status, value):
                self.send(status, json.dumps(value), "application/json")

            def do_GET(self):
                path = self.path.split("?")[0]
                base = f"/t/{site.tenant}"
                if path.startswith("/assets/") and re.fullmatch(r"/assets/[a-z0-9]+\.js", path):
                    file = ASSETS / path[len("/assets/"):]
                    if file.is_file():
                        return self.send(200, file.read_bytes(), "text/javascript; charset=utf-8")
                elif path == "/test.html":
                    return self.send(200, TEST_PAGE.read_bytes(), "text/html; charset=utf-8")
                elif m := re.fullmatch(re.escape(base) + r"/entries/([0-9]+)", path):
                    if int(m[1]) in site.proofs:
                        return self.send(200, site.entry_page(int(m[1])), "text/html; charset=utf-8")
                elif m := re.fullmatch(re.escape(base) + r"/entries/([0-9]+)/proof\.json", path):
                    if int(m[1]) in site.proofs:
                        return self.send_json(200, site.proofs[int(m[1])])
                elif m := re.fullmatch(re.escape(base) + r"/releases/([A-Za-z0-9._-]+)", path):
                    return self.send(200, site.release_page(m[1]), "text/html; charset=utf-8")
                self.send(404, "not found", "text/plain")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length))
                except ValueError:
                    return self.send_json(400, {"code": "INVALID_ARGUMENT", "message": "not JSON"})
                with site.lock:
                    site.requests.append((self.path, body))
                    if self.path == f"/t/{site.tenant}/approvals/prepare":
                        return self.send_json(*site.prepare(body))
                    if self.path == f"/t/{site.tenant}/append":
                        return self.send_json(*site.append(body))
                self.send(404, "not found", "text/plain")

        return Handler


# ---------------------------------------------------------------------------------------------
# The browser


def start_browser(profile):
    for path in (CHROMIUM, CHROMEDRIVER):
        check(
            os.path.isfile(path),
            f"{path} is missing: the console's browser tests need Debian's chromium and chromium-driver "
            "(run scripts/setup.sh --python)",
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    driver.set_page_load_timeout(60)
    return driver


def wait_for(driver, script, what, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    raise Failure(f"timed out waiting for {what}")


def open_test_page(driver, origin):
    driver.get(origin + "/test.html")
    wait_for(
        driver,
        "const s = document.getElementById('status'); "
        "if (s.dataset.error) throw new Error('test page: ' + s.dataset.error); return s.dataset.ready === 'true';",
        "the test page's modules",
    )


def call(driver, body, *args):
    """Runs an async function body (arguments: args) in the page; returns its value or raises."""
    answer = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const args = Array.from(arguments).slice(0, -1);"
        f"(async (...args) => {{ {body} }})(...args)"
        ".then(value => done({value}), error => done({error: String(error && error.stack || error)}));",
        *args,
    )
    if "error" in answer:
        raise Failure(f"in the browser: {answer['error']}")
    return answer.get("value")


def verify(driver, proof, key):
    return call(driver, "return await window.consoleCrypto.verify.verifyEntry(args[0], args[1]);", proof, key)


def failed_steps(result):
    return {s["step"] for s in result["steps"] if s["ok"] is False}


# ---------------------------------------------------------------------------------------------
# The checks


def check_blake3(driver):
    import blake3 as py_blake3

    lengths = sorted(BLAKE3_VECTORS) + BLAKE3_MORE
    got = call(
        driver,
        "const out = {};"
        "for (const n of args[0]) {"
        "  const input = new Uint8Array(n); for (let i = 0; i < n; i++) input[i] = i % 251;"
        "  out[n] = window.consoleCrypto.verify.toHex(window.consoleCrypto.blake3(input));"
        "} return out;",
        lengths,
    )
    for n in lengths:
        reference = py_blake3.blake3(vector_input(n)).hexdigest()
        check(got[str(n)] == reference, f"BLAKE3 of {n} bytes: browser {got[str(n)]}, Python's blake3 {reference}")
        if n in BLAKE3_VECTORS:
            check(got[str(n)] == BLAKE3_VECTORS[n], f"BLAKE3 of {n} bytes: {got[str(n)]}, official vector {BLAKE3_VECTORS[n]}")
    return {"officialVectors": len(BLAKE3_VECTORS), "againstPythonBlake3": len(lengths)}


def check_real_proofs(driver, cases):
    key = cases["pinnedKey"]
    redacted = cases["redactedSeq"]
    verified = 0
    for proof in cases["proofs"]:
        result = verify(driver, proof, key)
        label = f"seq {proof['seq']} at tree size {proof['inclusion']['treeSize']}"
        check([s["step"] for s in result["steps"]] == STEPS, f"{label}: steps {result['steps']}")
        if proof["seq"] == redacted:
            check(proof["envelope"] is None, f"{label}: the redacted entry has an envelope")
            check(result["steps"][0]["ok"] is None, f"{label}: redacted, step 1 must be skipped: {result}")
            check(all(s["ok"] is True for s in result["steps"][1:]), f"{label}: {result}")
            check(result["ok"] is True, f"{label}: a redacted entry's record still verifies: {result}")
        else:
            check(all(s["ok"] is True for s in result["steps"]), f"{label} does not verify: {result}")
            check(result["ok"] is True, f"{label}: {result}")
        verified += 1
    return verified


def tamper_cases(cases):
    """(name, proof, key, the steps that must fail) from one real proof."""
    size = cases["size"]
    base = next(
        p
        for p in cases["proofs"]
        if p["envelope"] is not None and p["inclusion"]["treeSize"] == size and len(p["inclusion"]["hashes"]) >= 2
    )
    key = cases["pinnedKey"]

    def copy():
        return json.loads(json.dumps(base))

    out = []
    p = copy()
    p["envelope"] = flip_b64(p["envelope"], len(base64.b64decode(p["envelope"])) // 2)
    out.append(("envelope", p, key, {"payload-hash"}))
    p = copy()
    p["entry"]["prevHash"] = flip_hex(p["entry"]["prevHash"], 5)
    out.append(("prevHash", p, key, {"entry-hash"}))
    p = copy()
    p["entry"]["entryHash"] = flip_hex(p["entry"]["entryHash"], 31)
    out.append(("entryHash", p, key, {"entry-hash", "inclusion"}))
    p = copy()
    p["inclusion"]["hashes"][1] = flip_hex(p["inclusion"]["hashes"][1], 0)
    out.append(("auditPath", p, key, {"inclusion"}))
    p = copy()
    lines = p["checkpoint"].split("\n")
    lines[2] = flip_b64(lines[2], 7)
    p["checkpoint"] = "\n".join(lines)
    out.append(("checkpointRoot", p, key, {"inclusion", "signature"}))
    p = copy()
    lines = p["checkpoint"].split("\n")
    signature = next(i for i, line in enumerate(lines) if line.startswith("\u2014 " + key["keyName"] + " "))
    prefix, blob = lines[signature].rsplit(" ", 1)
    lines[signature] = prefix + " " + flip_b64(blob, 4 + 20)  # after the 4-byte key hash
    p["checkpoint"] = "\n".join(lines)
    out.append(("signature", p, key, {"signature"}))
    out.append(("wrongPinnedKey", copy(), cases["otherKey"], {"signature"}))
    p = copy()
    p["tenant"] = "another-tenant"
    out.append(("otherTenant", p, key, {"tree-size"}))
    return out


def check_tampering(driver, cases):
    outcomes = {}
    for name, proof, key, expected in tamper_cases(cases):
        result = verify(driver, proof, key)
        failed = failed_steps(result)
        check(result["ok"] is False, f"{name}: verified although tampered: {result}")
        check(failed == expected, f"{name}: failed steps {sorted(failed)}, expected {sorted(expected)}: {result}")
        check(
            all(s["ok"] is True for s in result["steps"] if s["step"] not in expected),
            f"{name}: the other steps must pass: {result}",
        )
        outcomes[name] = sorted(failed)
    return outcomes


def read_steps(driver):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('ol#verify-steps li')).map(li => [li.dataset.step, li.dataset.ok]);"
    )


def check_entry_pages(driver, origin, cases):
    """init() on the entry page: the pinned key from the page, ./proof.json, the rendered steps."""
    seqs = sorted({p["seq"] for p in cases["proofs"]})
    tenant = cases["tenant"]
    outcomes = {}
    for seq in (s for s in seqs if s in (cases["redactedSeq"], seqs[-1], 1)):
        driver.get(f"{origin}/t/{tenant}/entries/{seq}")
        outcome = wait_for(
            driver, "return document.getElementById('verify-result').dataset.outcome;", f"entry {seq}'s verification"
        )
        steps = read_steps(driver)
        text = driver.execute_script("return document.getElementById('verify-result').textContent;")
        check(outcome == "verified", f"entry page {seq}: {outcome}: {text} {steps}")
        want = [[s, "true"] for s in STEPS]
        if seq == cases["redactedSeq"]:
            want[0][1] = "skipped"
            check("Not checked" in text and "redacted" in text, f"entry page {seq} must say what was not checked: {text}")
        check(steps == want, f"entry page {seq}: {steps}")
        outcomes[seq] = outcome
    # A page whose proof.json is missing fails visibly.
    driver.get(f"{origin}/t/{tenant}/entries/{seqs[-1]}")
    driver.execute_script(
        "document.getElementById('verify-result').removeAttribute('data-outcome');"
        "history.replaceState(null, '', location.pathname + '9999');"
    )
    call(driver, "await import('/assets/verify.js').then(m => m.init());")
    outcome = driver.execute_script("return document.getElementById('verify-result').dataset.outcome;")
    steps = read_steps(driver)
    check(outcome == "failed" and all(ok == "false" for _, ok in steps), f"missing proof.json: {outcome} {steps}")
    # renderSteps on a tampered result says what failed.
    name, proof, key, _ = tamper_cases(cases)[0]
    open_test_page(driver, origin)
    text = call(
        driver,
        "const r = await window.consoleCrypto.verify.verifyEntry(args[0], args[1]);"
        "const ol = document.createElement('ol'); const p = document.createElement('p');"
        "window.consoleCrypto.verify.renderSteps(r, ol, p);"
        "return [p.dataset.outcome, p.textContent, Array.from(ol.children).map(li => li.dataset.ok)];",
        proof,
        key,
    )
    check(text[0] == "failed" and "FAILED: payload hash" in text[1], f"renderSteps of {name}: {text}")
    check(text[2] == ["false", "true", "true", "true", "true"], f"renderSteps of {name}: {text}")
    outcomes["missingProof"] = outcome
    return outcomes


def check_sign_envelope(driver, cases):
    """signEnvelope with the CLI's key; verified here with `cryptography` over Python's PAE."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    signer = cases["signer"]
    pem = Path(signer["pem"]).read_text()
    private = load_pem_private_key(pem.encode(), password=None)
    public_raw = private.public_key().public_bytes_raw()
    check(base64.b64encode(public_raw).decode() == signer["publicKey"], "Python and Rust read different public keys")
    key_id = hashlib.sha256(public_raw).hexdigest()
    check(key_id == signer["keyId"], f"key id {key_id} != {signer['keyId']}")

    payload = base64.b64decode(cases["payload"])
    envelope = call(
        driver,
        "const bytes = Uint8Array.from(atob(args[2]), c => c.charCodeAt(0));"
        "return await window.consoleCrypto.approve.signEnvelope(args[0], args[1], bytes);",
        pem,
        cases["payloadType"],
        cases["payload"],
    )
    check(envelope["payloadType"] == cases["payloadType"], f"{envelope}")
    check(envelope["payload"] == cases["payload"], "the payload changed on the way")
    check(len(envelope["signatures"]) == 1 and envelope["signatures"][0]["keyid"] == key_id, f"{envelope}")
    sig = base64.b64decode(envelope["signatures"][0]["sig"])
    check(len(sig) == 64, "not a 64-byte Ed25519 signature")
    private.public_key().verify(sig, pae(cases["payloadType"], payload))  # raises InvalidSignature

    # The PAE itself, byte for byte (a non-ASCII type and an empty body too).
    for payload_type, body in [(cases["payloadType"], payload), ("application/x-é", b""), ("t", "ü".encode() * 3)]:
        got = call(
            driver,
            "const bytes = Uint8Array.from(atob(args[1]), c => c.charCodeAt(0));"
            "return window.consoleCrypto.verify.toHex(window.consoleCrypto.approve.pae(args[0], bytes));",
            payload_type,
            base64.b64encode(body).decode(),
        )
        check(got == pae(payload_type, body).hex(), f"PAE of {payload_type!r}: {got}")

    # An encrypted key is refused with a message that says so.
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, Encoding, PrivateFormat

    encrypted = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"secret")).decode()
    refused = call(
        driver,
        "try { await window.consoleCrypto.approve.signEnvelope(args[0], 't', new Uint8Array(1)); return 'signed'; }"
        "catch (e) { return e.message; }",
        encrypted,
    )
    check("encrypted" in refused, f"an encrypted key: {refused}")
    return envelope


def check_approve_form(driver, origin, site, cases, workdir):
    """approve.js on a release page, against the stand-in prepare/append."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    tenant = cases["tenant"]
    key_path = str(Path(cases["signer"]["pem"]).resolve())
    outcomes = {}

    def submit(role, comment, key_file):
        driver.get(f"{origin}/t/{tenant}/releases/release-1")
        driver.find_element(By.ID, "approve-key").send_keys(key_file)
        Select(driver.find_element(By.ID, "approve-role")).select_by_visible_text(role)
        driver.find_element(By.ID, "approve-comment").send_keys(comment)
        loaded_at = driver.execute_script("return window.loadedAt;")
        driver.find_element(By.ID, "approve-submit").click()
        outcome = wait_for(
            driver,
            "const o = document.getElementById('approve-result').dataset.outcome;"
            "return o && o !== 'working' ? o : null;",
            f"the approval ({role}, {comment!r})",
        )
        fields = driver.execute_script(
            "const out = {}; for (const dd of document.querySelectorAll('#approve-result dd')) out[dd.dataset.field] = dd.textContent;"
            "return out;"
        )
        payload = driver.find_element(By.ID, "approve-payload").text
        disabled = driver.execute_script("return document.getElementById('approve-submit').disabled;")
        return outcome, fields, payload, disabled, loaded_at

    # Appended: the payload shown, the receipt, then the page reloads.
    before = len(site.appended)
    outcome, fields, payload, disabled, loaded_at = submit("Approver", "ship it", key_path)
    check(outcome == "appended", f"approve: {outcome} {fields}")
    check(len(site.appended) == before + 1, "the stand-in append saw no valid envelope")
    check(fields.get("seq") == str(100 + len(site.appended)) and fields.get("entryHash") == "ab" * 32, f"{fields}")
    shown = json.loads(payload)
    check(shown["type"] == "ApprovalGranted" and shown["data"]["comment"] == "ship it", f"payload shown: {payload}")
    prepare = [b for p, b in site.requests if p.endswith("/approvals/prepare")][-1]
    check(
        prepare == {"releaseId": "release-1", "keyId": cases["signer"]["keyId"], "role": "Approver", "comment": "ship it"},
        f"prepare request: {prepare}",
    )
    wait_for(driver, f"return window.loadedAt && window.loadedAt !== {loaded_at};", "the reload after appending", 10)
    outcomes["appended"] = fields

    # Refused by prepare: nothing appended, the code and message shown verbatim.
    count = len(site.requests)
    outcome, fields, _, disabled, _ = submit("Nobody", "no", key_path)
    check(outcome == "refused", f"prepare refusal: {outcome} {fields}")
    check(fields.get("code") == "PERMISSION_DENIED" and fields.get("message") == "key holds no role Nobody", f"{fields}")
    check(not disabled, "the button stays disabled after a refusal")
    check([p for p, _ in site.requests[count:]] == [f"/t/{tenant}/approvals/prepare"], "appended after a refusal")
    outcomes["prepareRefused"] = fields

    # Refused by append (the ledger's answer, verbatim).
    outcome, fields, _, _, _ = submit("Approver", "refuse me", key_path)
    check(outcome == "refused", f"append refusal: {outcome} {fields}")
    check(fields.get("code") == "FAILED_PRECONDITION", f"{fields}")
    check(fields.get("message") == "release release-1 is already Approved (stand-in)", f"{fields}")
    outcomes["appendRefused"] = fields

    # A prepared event for another release than the page's: not signed, nothing appended.
    count = len(site.requests)
    outcome, fields, _, _, _ = submit("Approver", "swap", key_path)
    check(outcome == "error" and "prepared another event" in fields.get("error", ""), f"swapped event: {outcome} {fields}")
    check([p for p, _ in site.requests[count:]] == [f"/t/{tenant}/approvals/prepare"], "a swapped event was appended")
    outcomes["swapRefused"] = fields

    # An encrypted key file: refused in the page, nothing sent.
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        Encoding,
        PrivateFormat,
        load_pem_private_key,
    )

    private = load_pem_private_key(Path(key_path).read_bytes(), password=None)
    encrypted = Path(workdir) / "encrypted.pem"
    encrypted.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(b"pw")))
    count = len(site.requests)
    outcome, fields, _, disabled, _ = submit("Approver", "x", str(encrypted))
    check(outcome == "error" and "encrypted" in fields.get("error", ""), f"encrypted key: {outcome} {fields}")
    check(len(site.requests) == count, "an encrypted key sent a request")
    check(not disabled, "the button stays disabled after an error")
    outcomes["encryptedKey"] = fields
    return outcomes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, help="JSON written by console_crypto.rs")
    args = parser.parse_args()
    cases = json.loads(Path(args.cases).read_text())

    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    signer_public = load_pem_private_key(Path(cases["signer"]["pem"]).read_bytes(), password=None).public_key()
    site = Site(cases, signer_public)
    server = ThreadingHTTPServer(("127.0.0.1", 0), site.handler())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"

    workdir = tempfile.mkdtemp(prefix="console-crypto-")
    driver = None
    summary = {"ok": False}
    try:
        driver = start_browser(os.path.join(workdir, "profile"))
        summary["browser"] = driver.capabilities.get("browserVersion")
        open_test_page(driver, origin)
        summary["blake3"] = check_blake3(driver)
        summary["proofsVerified"] = check_real_proofs(driver, cases)
        summary["tampered"] = check_tampering(driver, cases)
        summary["signedEnvelope"] = check_sign_envelope(driver, cases)
        summary["entryPages"] = check_entry_pages(driver, origin, cases)
        summary["approveForm"] = check_approve_form(driver, origin, site, cases, workdir)
        summary["ok"] = True
    except Failure as failure:
        summary["error"] = str(failure)
    finally:
        if driver is not None:
            try:
                logs = driver.get_log("browser")
                if logs and not summary["ok"]:
                    summary["browserLog"] = logs[-20:]
            except Exception:  # noqa: BLE001 - the log is a diagnostic only
                pass
            driver.quit()
        server.shutdown()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(summary))
    sys.exit(0 if summary["ok"] else 1)


if __name__ == "__main__":
    main()
