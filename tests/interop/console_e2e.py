#!/usr/bin/env python3
"""End-to-end browser checks of the web console (docs/console.md), in headless Chromium.

Driven by api/cli/tests/service/console.rs, which starts `release-ledger serve` with a console,
fills it with the demo and a few releases of its own, mints the tokens and writes the config
file this script reads (--config). Everything here goes through a real browser (selenium 4,
Debian's chromium and chromedriver; selenium-manager never downloads anything) except the
expected values, which come from the CLI (`releases`, `summary`, `checkpoint`), and the status
codes, which come from plain HTTP requests.

Checks (each a section; a failed section is reported and the others still run):
  - sign-in: a malformed token signs nobody in; /login with a reader (Auditor) token sets the
    rl_token cookie (HttpOnly, SameSite=Strict, expiring with the token); / leads to the tenant;
  - board: every release of `releases --all` is a row, with the same status; #counts equal
    the rows per status; form#filters (status, environment, module, q) filters as the CLI does;
  - delayed: a release delayed by a freeze in force shows Delayed, a future retry-after, a
    ticking countdown and the freeze in table#gates;
  - proof: the in-browser check verifies real entries; a test double serving the real page and
    assets with a proof.json with one byte flipped (an audit-path hash; the checkpoint
    signature; the envelope) fails at the expected step;
  - approval: refusals (an unregistered key; a key without the role) are shown and append
    nothing; an approval signed in the browser is appended and the release becomes Approved;
  - release pages: every release's #status, counted approvals and gate verdicts agree with its
    summary; #explain re-derives the last decision from the log;
  - access: a reader of another tenant gets 403 and #refused on the tenant's board, release
    and entry pages; no credential redirects to /login;
  - accessibility: labels on every form control, <html lang>, no horizontal scrolling at 375 px;
  - pages: freezes, module history and operator pages show their hooks (the operator page is
    refused to a reader); screenshots of the main pages go to the config's screenshot dir;
  - http: unknown releases and entries are 404; /t/{tenant}/events starts with `event: head`
    and the log size, and refuses a reader of another tenant;
  - live: a release declared while the board is open appears on it, counted, without a reload;
  - revocation: a signed-in reader whose key is revoked is out on the next page.

Prints progress on stderr and one JSON summary line on stdout ({"ok": ..., "failures": [...]});
exits 1 when a check fails, 2 when the browser cannot start.
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as dt
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SETUP_HINT = "run scripts/setup.sh --python (it installs Debian's chromium and chromium-driver)"
BROWSER_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
]
# The steps of the in-browser proof check, in docs/console.md's order ("proof.json").
STEP_PAYLOAD, STEP_ENTRY, STEP_INCLUSION, STEP_SIGNATURE, STEP_SIZE = range(5)


def log(message: str) -> None:
    print(f"[console_e2e {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Check(Exception):
    """A failed expectation: what was expected and what was seen."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Check(message)


# --- plain HTTP (status codes, the test double's upstream) -------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 - urllib API
        return None


def http_get(url: str, token: str | None = None, cookie: str | None = None) -> tuple[int, dict, bytes]:
    """GET without following redirects: (status, headers, body)."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if cookie:
        request.add_header("Cookie", cookie)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


# --- the test double ------------------------------------------------------------------------------


def flip_hex(text: str, index: int = 0) -> str:
    """`text` (hex) with one bit of byte `index` flipped."""
    raw = bytearray(bytes.fromhex(text))
    raw[index] ^= 0x01
    return raw.hex()


def tamper_audit_path(proof: dict) -> dict:
    proof = copy.deepcopy(proof)
    hashes = proof["inclusion"]["hashes"]
    expect(len(hashes) > 0, f"the proof has no audit path to tamper with: {proof['inclusion']}")
    hashes[0] = flip_hex(hashes[0])
    return proof


def tamper_signature(proof: dict) -> dict:
    """Flips one byte of the Ed25519 signature (past the 4-byte key hash) of every signature
    line of the checkpoint note."""
    proof = copy.deepcopy(proof)
    lines = proof["checkpoint"].split("\n")
    changed = 0
    for i, line in enumerate(lines):
        if line.startswith("\u2014 "):
            name, sig = line[2:].rsplit(" ", 1)
            raw = bytearray(base64.b64decode(sig))
            raw[4 + 10] ^= 0x01
            lines[i] = f"\u2014 {name} {base64.b64encode(bytes(raw)).decode()}"
            changed += 1
    expect(changed > 0, f"no signature line in the checkpoint: {proof['checkpoint']!r}")
    proof["checkpoint"] = "\n".join(lines)
    return proof


def tamper_envelope(proof: dict) -> dict:
    proof = copy.deepcopy(proof)
    expect(proof.get("envelope"), "the entry's envelope is redacted: nothing to tamper with")
    raw = bytearray(base64.b64decode(proof["envelope"]))
    raw[len(raw) // 2] ^= 0x01
    proof["envelope"] = base64.b64encode(bytes(raw)).decode()
    return proof


TAMPER = {"audit-path": tamper_audit_path, "signature": tamper_signature, "envelope": tamper_envelope}


class Double:
    """An HTTP server that serves what the real console serves (fetched with a bearer token),
    except proof.json, which it tampers with according to `mode`."""

    def __init__(self, upstream: str, token: str):
        self.upstream = upstream.rstrip("/")
        self.token = token
        self.mode = "audit-path"
        self.served: list[str] = []
        double = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server API
                double.served.append(self.path)
                status, headers, body = http_get(double.upstream + self.path, token=double.token)
                if self.path.split("?")[0].endswith("/proof.json") and status == 200:
                    body = json.dumps(TAMPER[double.mode](json.loads(body))).encode()
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() in ("content-type", "content-security-policy", "location", "cache-control"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the browser -----------------------------------------------------------------------------------


def start_browser(profile: str):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.path.exists(path):
            print(json.dumps({"ok": False, "failures": [f"{path} is missing: {SETUP_HINT}"]}))
            log(f"{path} is missing: {SETUP_HINT}")
            sys.exit(2)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as error:
        print(json.dumps({"ok": False, "failures": [f"selenium is not importable ({error}): {SETUP_HINT}"]}))
        sys.exit(2)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


class Console:
    def __init__(self, driver, base: str, shots: str):
        self.driver = driver
        self.base = base.rstrip("/")
        self.shots = shots

    def get(self, path: str) -> None:
        self.driver.get(self.base + path if path.startswith("/") else path)

    def css(self, selector: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def one(self, selector: str, what: str = ""):
        found = self.css(selector)
        expect(len(found) >= 1, f"{self.where()}: no {selector} {what}".rstrip())
        return found[0]

    def where(self) -> str:
        return self.driver.current_url

    def wait(self, predicate, timeout: float, message) -> object:
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except Exception:  # noqa: BLE001 - stale elements while the page changes
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise Check(message() if callable(message) else message)
            time.sleep(0.1)

    def attr(self, selector: str, name: str) -> str | None:
        found = self.css(selector)
        return found[0].get_attribute(name) if found else None

    def text(self, selector: str) -> str:
        found = self.css(selector)
        return found[0].text.strip() if found else ""

    def fetch_status(self, path: str) -> int:
        """The status of a same-origin fetch of `path` with the browser's cookies (0: a
        redirect, which `redirect: manual` hides)."""
        return self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "fetch(arguments[0], {credentials: 'same-origin', redirect: 'manual'})"
            ".then(r => done(r.status)).catch(e => done(-1));",
            path,
        )

    def shot(self, name: str) -> str:
        """A screenshot of the whole page (beyond the viewport) to the screenshot dir."""
        path = os.path.join(self.shots, f"{name}.png")
        try:
            width, height = self.driver.execute_script(
                "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
            )
            shot = self.driver.execute_cdp_cmd(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "captureBeyondViewport": True,
                    "clip": {"x": 0, "y": 0, "width": width, "height": min(height, 6000), "scale": 1},
                },
            )
            with open(path, "wb") as f:
                f.write(base64.b64decode(shot["data"]))
        except Exception:  # noqa: BLE001 - the viewport will do
            self.driver.save_screenshot(path)
        return path

    def overflowing(self) -> list[str]:
        """The innermost elements that reach past the viewport's right edge or whose content
        (long unbroken text, say) spills out of them: the culprits of a horizontal scroll."""
        return self.driver.execute_script(
            """
            const width = window.innerWidth;
            const spills = (e) => e.getBoundingClientRect().right > width + 1 ||
              (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX === 'visible');
            const out = [];
            for (const el of document.body.querySelectorAll('*')) {
              if (spills(el) && !Array.from(el.children).some(spills)) {
                const name = el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
                  (el.dataset.step ? '[data-step=' + el.dataset.step + ']' : '');
                out.push(name + ' (content ' + el.scrollWidth + ' px in ' + el.clientWidth + ' px)');
              }
            }
            return out.slice(0, 6);
            """
        )

    def sign_in(self, token: str) -> None:
        self.driver.delete_all_cookies()
        self.get("/login")
        form = self.one("form#login")
        # docs/console.md names input[name=token]; any control named token signs in here, so the
        # other checks still run when only that hook differs (check_sign_in reports it).
        field = self.one("form#login [name=token]")
        field.send_keys(token)
        login_url = self.where()
        form.submit()
        self.wait(lambda: self.where() != login_url, 10, lambda: f"still on {self.where()} after signing in")
        expect(not self.where().rstrip("/").endswith("/login"), f"signing in stayed on {self.where()}")


# --- the checks ------------------------------------------------------------------------------------


class Run:
    def __init__(self, config: dict):
        self.config = config
        self.failures: list[str] = []
        self.passed: list[str] = []
        self.facts: dict = {}

    def section(self, name: str, function, *args) -> None:
        started = time.monotonic()
        log(f"{name} ...")
        try:
            function(*args)
            self.passed.append(name)
            log(f"{name}: ok ({time.monotonic() - started:.1f} s)")
        except Check as error:
            self.failures.append(f"{name}: {error}")
            log(f"{name}: FAILED: {error}")
        except Exception as error:  # noqa: BLE001 - report, go on with the next section
            self.failures.append(f"{name}: {type(error).__name__}: {error}")
            log(f"{name}: ERROR:\n{traceback.format_exc()}")

    # The CLI, for the expected values.
    def cli(self, *args: str) -> str:
        env = dict(os.environ)
        env["RELEASE_LEDGER_SERVER"] = self.config["grpc"]
        env["RELEASE_LEDGER_TOKEN"] = self.config["tokens"]["operator"]
        result = subprocess.run(
            [self.config["binary"], "--json", *args], capture_output=True, text=True, env=env, timeout=60
        )
        expect(result.returncode == 0, f"release-ledger {' '.join(args)} failed: {result.stderr}{result.stdout}")
        return result.stdout

    def release_rows(self, *filters: str) -> list[dict]:
        out = self.cli("releases", "--tenant", self.config["tenant"], "--all", *filters)
        rows = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
        return [r for r in rows if "releaseId" in r]

    def releases(self, *filters: str) -> dict[str, str]:
        return {r["releaseId"]: r["status"] for r in self.release_rows(*filters)}

    def summary(self, release: str) -> dict:
        return json.loads(self.cli("summary", "--tenant", self.config["tenant"], "--release", release))

    def log_size(self) -> int:
        return int(json.loads(self.cli("checkpoint", "--tenant", self.config["tenant"]))["size"])


def token_expiry(token: str) -> int:
    payload = token.split(".")[1]
    return int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["exp"])


def check_sign_in(run: Run, c: Console) -> None:
    tenant = run.config["tenant"]
    # A token that does not verify signs nobody in.
    c.driver.delete_all_cookies()
    c.get("/login")
    c.one("form#login [name=token]").send_keys("not.a.token")
    c.one("form#login").submit()
    time.sleep(0.5)
    expect(
        "rl_token" not in {k["name"] for k in c.driver.get_cookies()},
        f"a malformed token was accepted: {c.where()}",
    )
    expect(c.css("form#login"), f"after a malformed token the browser is at {c.where()}, not back at /login")
    c.get("/login")
    fields = c.css("form#login input[name=token]")
    named = [f"<{e.tag_name} name=token>" for e in c.css("form#login [name=token]")]
    c.shot("login")
    c.sign_in(run.config["tokens"]["reader"])
    cookies = {k["name"]: k for k in c.driver.get_cookies()}
    expect("rl_token" in cookies, f"no rl_token cookie after signing in: {sorted(cookies)}")
    cookie = cookies["rl_token"]
    expect(cookie.get("httpOnly") is True, f"rl_token is not HttpOnly: {cookie.get('httpOnly')}")
    expect(cookie.get("sameSite") == "Strict", f"rl_token is not SameSite=Strict: {cookie.get('sameSite')}")
    # A reader of one tenant: / leads to it (a redirect, or a list with its link).
    c.get("/")
    here = c.where()
    links = [a.get_attribute("href") for a in c.css("ul#tenants a")]
    expect(
        here.rstrip("/").endswith(f"/t/{tenant}") or any(h and h.rstrip("/").endswith(f"/t/{tenant}") for h in links),
        f"/ neither redirects to /t/{tenant} nor links to it: at {here}, links {links}",
    )
    problems = []
    if not fields:
        problems.append(f"/login has no form#login input[name=token] (docs/console.md); it has {named}")
    exp = token_expiry(run.config["tokens"]["reader"])
    if "expiry" not in cookie:
        problems.append(f"the rl_token cookie has no expiry (a session cookie), not the token's exp {exp}")
    elif abs(int(cookie["expiry"]) - exp) > 120:
        problems.append(f"the rl_token cookie expires at {cookie['expiry']}, the token at {exp}")
    expect(not problems, "; ".join(problems))


def board_rows(c: Console, tenant: str, query: str = "") -> tuple[dict[str, str], dict[str, str]]:
    """Every row of the board (following a#next-page) and the counts of its first page."""
    c.get(f"/t/{tenant}{query}")
    c.one("table#releases", "(the board)")
    counts = {e.get_attribute("data-count"): e.text.strip() for e in c.css("#counts [data-count]")}
    rows: dict[str, str] = {}
    for _ in range(50):
        for tr in c.css("table#releases tr[data-release]"):
            release, status = tr.get_attribute("data-release"), tr.get_attribute("data-status")
            expect(release not in rows, f"release {release} is listed twice")
            rows[release] = status
        following = c.css("a#next-page")
        if not following or not following[0].get_attribute("href"):
            break
        c.get(following[0].get_attribute("href"))
    return rows, counts


def check_board(run: Run, c: Console) -> None:
    tenant = run.config["tenant"]
    expected = run.releases()
    rows, counts = board_rows(c, tenant)
    c.get(f"/t/{tenant}")
    c.shot("board")
    run.facts["boardRows"] = len(rows)
    expect(len(expected) >= 6, f"the CLI lists only {len(expected)} releases: {expected}")
    missing = sorted(set(expected) - set(rows))
    extra = sorted(set(rows) - set(expected))
    expect(not missing and not extra, f"board rows differ from `releases`: missing {missing}, extra {extra}")
    wrong = {r: (rows[r], expected[r]) for r in expected if rows[r] != expected[r]}
    expect(not wrong, f"data-status differs from `releases` (board, CLI): {wrong}")
    per_status: dict[str, int] = {}
    for status in rows.values():
        per_status[status] = per_status.get(status, 0) + 1
    for status, n in per_status.items():
        expect(status in counts, f"#counts has no [data-count={status}] ({n} rows): {counts}")
    for status, text in counts.items():
        expect(text.isdigit(), f"#counts [data-count={status}] text is not a number: {text!r}")
        # A total beside the statuses (not one of them) counts every row.
        rows_with = len(rows) if status == "All" else per_status.get(status, 0)
        expect(int(text) == rows_with, f"#counts [data-count={status}] says {text}, the board has {rows_with} rows")
    run.facts["counts"] = counts


def filter_board(c: Console, tenant: str, field: str, value: str) -> dict[str, str]:
    """Fills one control of form#filters in the browser, submits it, and reads the rows."""
    from selenium.webdriver.support.ui import Select

    c.get(f"/t/{tenant}")
    control = c.one(f"form#filters [name={field}]")
    if control.tag_name == "select":
        Select(control).select_by_value(value)
    else:
        control.clear()
        control.send_keys(value)
    before = c.where()
    c.one("form#filters").submit()
    c.wait(lambda: c.where() != before, 10, lambda: f"submitting form#filters ({field}={value}) stayed at {c.where()}")
    rows, _ = board_rows(c, tenant, "?" + c.where().split("?", 1)[1] if "?" in c.where() else "")
    return rows


def check_filters(run: Run, c: Console) -> None:
    tenant = run.config["tenant"]
    c.get(f"/t/{tenant}")
    names = {e.get_attribute("name") for e in c.css("form#filters [name]")}
    missing = {"status", "environment", "module", "from", "to", "q"} - names
    expect(not missing, f"form#filters lacks {sorted(missing)} (has {sorted(names)})")
    everything = run.release_rows()
    cases = [
        ("status", "Delayed", run.releases("--status", "Delayed")),
        ("environment", "production", run.releases("--environment", "production")),
        (
            "module",
            "invoice-service",
            {r["releaseId"]: r["status"] for r in everything if any(m["name"] == "invoice-service" for m in r["modules"])},
        ),
        ("q", "console-", {r["releaseId"]: r["status"] for r in everything if r["releaseId"].startswith("console-")}),
    ]
    for field, value, expected in cases:
        expect(expected, f"nothing to filter by {field}={value}: {everything}")
        rows = filter_board(c, tenant, field, value)
        expect(rows == expected, f"the board filtered by {field}={value} shows {rows}, expected {expected}")
    c.shot("board-filtered")


def parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    expect(value.tzinfo is not None, f"retry-after datetime has no time zone: {text!r}")
    return value


def check_delayed(run: Run, c: Console) -> None:
    tenant, release, freeze = run.config["tenant"], run.config["delayed"], run.config["freeze"]
    c.get(f"/t/{tenant}/releases/{release}")
    c.shot("release-delayed")
    status = c.text("#status")
    expect(status == "Delayed", f"#status of {release} is {status!r}, not Delayed")
    when = c.attr("#retry-after time[datetime]", "datetime")
    expect(when, f"{c.where()}: no #retry-after time[datetime]")
    retry = parse_time(when)
    now = dt.datetime.now(dt.timezone.utc)
    expect(retry > now, f"#retry-after {when} is not in the future (now {now.isoformat()})")
    cli_retry = run.summary(release)["retryAfter"]
    expect(
        cli_retry and abs((parse_time(cli_retry) - retry).total_seconds()) < 1,
        f"#retry-after {when} differs from the summary's retryAfter {cli_retry}",
    )
    first = c.text("#countdown")
    expect(first, f"{c.where()}: #countdown is empty or missing")
    time.sleep(2.1)
    second = c.text("#countdown")
    expect(second != first, f"#countdown did not change over 2 s: {first!r}")
    rows = c.css("table#gates tr[data-gate]")
    naming = [tr for tr in rows if freeze in tr.text]
    expect(naming, f"no table#gates row names the freeze {freeze}: {[tr.text for tr in rows]}")
    verdict = naming[0].get_attribute("data-verdict")
    expect(verdict == "pending", f"the freeze's gate row has data-verdict={verdict!r}, not pending")
    run.facts["delayed"] = {"retryAfter": when, "countdown": [first, second], "gate": naming[0].get_attribute("data-gate")}


def verify_steps(c: Console) -> tuple[str, list[dict]]:
    outcome = c.wait(
        lambda: c.attr("#verify-result", "data-outcome") in ("verified", "failed")
        and c.attr("#verify-result", "data-outcome"),
        15,
        lambda: f"{c.where()}: #verify-result has no outcome after 15 s: {c.text('#verify-result')!r}",
    )
    steps = [
        {"step": li.get_attribute("data-step"), "ok": li.get_attribute("data-ok"), "text": li.text.strip()}
        for li in c.css("ol#verify-steps li[data-step]")
    ]
    return outcome, steps


def check_proof(run: Run, c: Console) -> None:
    tenant = run.config["tenant"]
    for seq in run.config["entries"]:
        c.get(f"/t/{tenant}/entries/{seq}")
        outcome, steps = verify_steps(c)
        expect(outcome == "verified", f"entry {seq}: data-outcome={outcome}: {steps}")
        expect(len(steps) == 5, f"entry {seq}: {len(steps)} steps, docs/console.md lists 5: {steps}")
        for s in steps:
            expect(s["ok"] in ("true", "skipped"), f"entry {seq}: step {s['step']} is data-ok={s['ok']}: {steps}")
            if s["ok"] == "skipped":
                expect(len(s["text"]) > 0, f"entry {seq}: step {s['step']} is skipped without a reason")
        run.facts.setdefault("verifiedSteps", steps)
    c.shot("entry")


def check_tampered(run: Run, c: Console) -> None:
    tenant, seq = run.config["tenant"], run.config["entries"][-1]
    double = Double(run.config["console"], run.config["tokens"]["operator"])
    results = {}
    try:
        for mode, failing in (("audit-path", STEP_INCLUSION), ("signature", STEP_SIGNATURE), ("envelope", STEP_PAYLOAD)):
            double.mode = mode
            c.driver.get(f"{double.url}/t/{tenant}/entries/{seq}")
            outcome, steps = verify_steps(c)
            results[mode] = steps
            expect(outcome == "failed", f"{mode} flipped: data-outcome={outcome}: {steps}")
            expect(len(steps) == 5, f"{mode} flipped: {len(steps)} steps: {steps}")
            bad = [i for i, s in enumerate(steps) if s["ok"] == "false"]
            expect(
                failing in bad,
                f"{mode} flipped: step {failing + 1} ({steps[failing]['step']}) should fail; failing: "
                f"{[steps[i]['step'] for i in bad]}: {steps}",
            )
            # The steps before the failing one (and checks independent of it) still pass.
            independent = {STEP_INCLUSION: [STEP_PAYLOAD, STEP_ENTRY, STEP_SIGNATURE], STEP_SIGNATURE: [STEP_PAYLOAD, STEP_ENTRY, STEP_INCLUSION]}
            for i in independent.get(failing, []):
                expect(steps[i]["ok"] == "true", f"{mode} flipped: step {i + 1} ({steps[i]['step']}) should still pass: {steps}")
            if mode == "audit-path":
                c.shot("entry-tampered")
        expect(any(p.endswith("/proof.json") for p in double.served), f"the page never fetched proof.json: {double.served}")
    finally:
        double.close()
    run.facts["tampered"] = {m: [(s["step"], s["ok"]) for s in steps] for m, steps in results.items()}


def choose_role(c: Console, role: str) -> None:
    from selenium.webdriver.support.ui import Select

    select = Select(c.one("form#approve select#approve-role"))
    values = [o.get_attribute("value") for o in select.options]
    texts = [o.text.strip() for o in select.options]
    if role in values:
        select.select_by_value(role)
    elif role in texts:
        select.select_by_visible_text(role)
    else:
        raise Check(f"select#approve-role offers no {role}: values {values}, texts {texts}")


def approve(c: Console, tenant: str, release: str, key: str, role: str, comment: str) -> tuple[str, str]:
    c.get(f"/t/{tenant}/releases/{release}")
    form = c.one("form#approve", "(the approval form)")
    # The form may sit in a collapsed <details>: open it as a person would.
    if not form.is_displayed():
        for details in c.css("details"):
            if details.find_elements("css selector", "form#approve") and not details.get_attribute("open"):
                details.find_element("css selector", "summary").click()
        expect(form.is_displayed(), f"{c.where()}: form#approve is not visible")
    c.one("input#approve-key[type=file]").send_keys(os.path.abspath(key))
    choose_role(c, role)
    c.one("textarea#approve-comment").send_keys(comment)
    c.one("button#approve-submit").click()
    outcome = c.wait(
        lambda: c.attr("#approve-result", "data-outcome") in ("appended", "refused")
        and c.attr("#approve-result", "data-outcome"),
        20,
        lambda: f"{c.where()}: #approve-result has no outcome after 20 s: {c.text('#approve-result')!r}",
    )
    return outcome, c.text("#approve-result")


def check_approval(run: Run, c: Console) -> None:
    tenant, release = run.config["tenant"], run.config["approve"]["release"]
    approval = run.config["approve"]
    c.get(f"/t/{tenant}/releases/{release}")
    before_status = c.text("#status")
    expect(before_status == "Delayed", f"#status of {release} before approving is {before_status!r}, not Delayed")
    c.shot("release-approve")

    # Refusals: shown with the ledger's message, nothing appended.
    for refusal in approval["refusals"]:
        size = run.log_size()
        outcome, message = approve(c, tenant, release, refusal["key"], refusal["role"], "should be refused")
        expect(outcome == "refused", f"{refusal['why']}: data-outcome={outcome}: {message!r}")
        expect(
            refusal["message"].lower() in message.lower(),
            f"{refusal['why']}: the refusal shown does not say {refusal['message']!r}: {message!r}",
        )
        time.sleep(0.3)
        after = run.log_size()
        expect(after == size, f"{refusal['why']}: the log grew from {size} to {after} entries")
        run.facts.setdefault("refusals", {})[refusal["why"]] = message
        c.shot(f"approve-refused-{refusal['shot']}")

    size = run.log_size()
    comment = approval["comment"]
    outcome, message = approve(c, tenant, release, approval["key"], approval["role"], comment)
    expect(outcome == "appended", f"approval: data-outcome={outcome}: {message!r}")
    expect("seq" in message.lower(), f"the receipt shown does not name the seq: {message!r}")
    c.shot("approve-appended")
    run.facts["approved"] = message

    def approved():
        c.driver.refresh()
        return c.text("#status") == "Approved"

    c.wait(approved, 15, lambda: f"#status of {release} is {c.text('#status')!r} 15 s after the approval, not Approved")
    summary = run.summary(release)
    expect(summary["status"] == "Approved", f"the CLI says {release} is {summary['status']}")
    granted = [a for a in summary["approvals"] if a.get("text") == comment]
    expect(granted, f"no approval with the comment {comment!r} in the summary: {summary['approvals']}")
    expect(granted[0]["role"] == approval["role"], f"the approval's role is {granted[0]['role']}")
    expect(granted[0]["keyId"] == approval["keyId"], f"the approval was signed by {granted[0]['keyId']}")
    expect(run.log_size() > size, "the log did not grow with the approval")
    counted = c.css("table#approvals tr[data-counted=true]")
    expect(counted, f"{c.where()}: no table#approvals tr[data-counted=true] after the approval")


def check_other_tenant(run: Run, c: Console) -> None:
    tenant = run.config["tenant"]
    c.sign_in(run.config["tokens"]["outsider"])
    paths = [
        f"/t/{tenant}",
        f"/t/{tenant}/releases/{run.config['delayed']}",
        f"/t/{tenant}/entries/{run.config['entries'][0]}",
        "/t/no-such-tenant",
    ]
    for path in paths:
        c.get(path)
        expect(c.css("#refused"), f"{path} as a reader of {run.config['otherTenant']}: no #refused at {c.where()}")
        expect(len(c.text("#refused")) > 0, f"{path}: #refused gives no reason")
        status = c.fetch_status(path)
        expect(status == 403, f"{path} as a reader of {run.config['otherTenant']}: status {status}, not 403")
        code, _, _ = http_get(run.config["console"] + path, token=run.config["tokens"]["outsider"])
        expect(code == 403, f"{path} with the outsider's Authorization header: status {code}, not 403")
    c.get(f"/t/{tenant}")
    c.shot("refused")
    run.facts["refusedReason"] = c.text("#refused")
    # Their own tenant reads.
    c.get(f"/t/{run.config['otherTenant']}")
    expect(not c.css("#refused"), f"the outsider is refused their own tenant: {c.text('#refused')!r}")


def check_release_pages(run: Run, c: Console) -> None:
    """Every release's page against its summary: status, approvals counted, gate verdicts, and
    the decision re-derived from the log."""
    tenant = run.config["tenant"]
    odd = []
    for release, status in run.releases().items():
        summary = run.summary(release)
        c.get(f"/t/{tenant}/releases/{release}")
        expect(c.text("#status") == status, f"{release}: #status {c.text('#status')!r}, the CLI says {status}")
        gates = {tr.get_attribute("data-gate"): tr.get_attribute("data-verdict") for tr in c.css("table#gates tr[data-gate]")}
        expect(gates, f"{release}: no table#gates tr[data-gate]")
        odd += [f"{release}: {g}={v}" for g, v in gates.items() if v not in ("pass", "fail", "pending", "not-applicable")]
        counted = len(c.css("table#approvals tr[data-counted=true]"))
        if status in ("Approved", "Published"):
            expect(
                counted == len(summary["approvals"]),
                f"{release}: {counted} approvals counted on the page, the summary lists {len(summary['approvals'])}",
            )
        if status == "Rejected":
            failing = [g for g, v in gates.items() if v == "fail"]
            expect(failing, f"{release} is Rejected but no gate fails: {gates}")
        total = c.attr("#risk [data-points]", "data-points")
        expect(total is not None, f"{release}: no #risk [data-points]")
    # The last decision is re-derived from the log (a fragment loaded by the page). The check
    # folds the log, so the page runs it when asked: button#explain-check (not in the hooks
    # table of docs/console.md, which says the page loads it after it renders).
    release = run.config["approve"]["release"]
    c.get(f"/t/{tenant}/releases/{release}")
    expect(c.attr("#explain", "data-reproduced") == "unknown", f"{release}: #explain was checked before it was asked")
    c.one("#explain-check", "(the button that runs the replay check)").click()
    c.wait(
        lambda: c.attr("#explain", "data-reproduced") in ("true", "false"),
        15,
        lambda: f"{release}: #explain stays data-reproduced={c.attr('#explain', 'data-reproduced')}",
    )
    expect(c.attr("#explain", "data-reproduced") == "true", f"{release}: #explain is data-reproduced=false: {c.text('#explain')!r}")
    # Last, as it does not stop the checks above: docs/console.md gives data-verdict=pass|fail|pending|not-applicable.
    expect(not odd, f"table#gates rows with a data-verdict outside pass|fail|pending|not-applicable: {odd}")


def check_no_credential(run: Run, c: Console) -> None:
    tenant = run.config["tenant"]
    c.driver.delete_all_cookies()
    for path in (f"/t/{tenant}", f"/t/{tenant}/releases/{run.config['delayed']}"):
        code, headers, _ = http_get(run.config["console"] + path)
        location = {k.lower(): v for k, v in headers.items()}.get("location", "")
        expect(300 <= code < 400 and "/login" in location, f"{path} without a credential: {code} to {location!r}")
        c.get(path)
        expect("/login" in c.where(), f"{path} without a credential: the browser is at {c.where()}")
        c.one("form#login", "(redirected to /login)")


def first_event(url: str, token: str) -> tuple[str, str]:
    """The first server-sent event of `url`: (event, data)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "text/event-stream"})
    with urllib.request.urlopen(request, timeout=10) as response:
        expect(
            response.headers.get("Content-Type", "").startswith("text/event-stream"),
            f"{url}: Content-Type {response.headers.get('Content-Type')!r}",
        )
        event, data = "", []
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
            elif not line and (event or data):
                return event, "\n".join(data)
    raise Check(f"{url}: the stream ended before an event")


def check_http(run: Run, c: Console) -> None:
    """What is not seen in a browser window: unknown pages, the board's live updates."""
    tenant, reader = run.config["tenant"], run.config["tokens"]["reader"]
    base = run.config["console"]
    for path in (f"/t/{tenant}/releases/no-such-release", f"/t/{tenant}/entries/999999"):
        code, _, _ = http_get(base + path, token=reader)
        expect(code == 404, f"{path}: status {code}, not 404")
    size = run.log_size()
    event, data = first_event(f"{base}/t/{tenant}/events", reader)
    expect(event == "head" and data == str(size), f"/t/{tenant}/events: first event {event!r} {data!r}, log size {size}")
    code, _, _ = http_get(f"{base}/t/{tenant}/events", token=run.config["tokens"]["outsider"])
    expect(code == 403, f"/t/{tenant}/events as a reader of another tenant: status {code}, not 403")


def check_live(run: Run, c: Console) -> None:
    """The open board follows the log (server-sent events): a release declared while it is
    shown appears, counted, without a reload."""
    tenant, live = run.config["tenant"], run.config["live"]
    c.sign_in(run.config["tokens"]["reader"])
    c.get(f"/t/{tenant}")
    rows, counts = board_rows(c, tenant)
    expect(live["release"] not in rows, f"{live['release']} is on the board before it is declared")
    c.driver.execute_script("window.__consoleE2eNoReload = true;")
    time.sleep(0.5)  # the event source connects
    run.cli(
        "intent", "--tenant", tenant, "--key", live["key"], "--release", live["release"],
        "--environment", live["environment"], "--module", live["module"], "--wait",
    )
    status = run.releases()[live["release"]]

    def shown():
        found = c.css(f"table#releases tr[data-release='{live['release']}']")
        return found and found[0].get_attribute("data-status") == status

    c.wait(shown, 15, lambda: f"{live['release']} ({status}) did not appear on the open board within 15 s")
    expect(
        c.driver.execute_script("return window.__consoleE2eNoReload === true"), "the board reloaded instead of updating"
    )
    count = c.text(f"#counts [data-count={status}]")
    expect(count == str(int(counts.get(status, "0")) + 1), f"#counts [data-count={status}] is {count!r} after the update")
    c.shot("board-live")


def check_revocation(run: Run, c: Console) -> None:
    """Revoking the key of a signed-in reader takes effect on the next page."""
    tenant, revocable = run.config["tenant"], run.config["revocable"]
    c.sign_in(revocable["token"])
    c.get(f"/t/{tenant}")
    c.one("table#releases", "(the board, before the revocation)")
    run.cli(
        "keys", "revoke", "--tenant", tenant, "--key-id", revocable["keyId"], "--reason", "console e2e",
        "--admin-key", revocable["adminKey"],
    )
    c.get(f"/t/{tenant}")
    expect(not c.css("table#releases"), f"the board still shows to a revoked key at {c.where()}")
    expect("/login" in c.where() or c.css("#refused"), f"after the revocation: {c.where()}")
    code, headers, _ = http_get(f"{run.config['console']}/t/{tenant}", token=revocable["token"])
    expect(code in (302, 303, 307, 401, 403), f"the revoked key's token: status {code}")
    run.facts["revoked"] = {"browserAt": c.where(), "status": code}


def unlabeled_controls(c: Console) -> list[str]:
    return c.driver.execute_script(
        """
        const out = [];
        for (const el of document.querySelectorAll('input, select, textarea')) {
          const type = (el.getAttribute('type') || '').toLowerCase();
          if (['hidden', 'submit', 'button', 'reset', 'image'].includes(type)) continue;
          const byFor = el.id && document.querySelector('label[for="' + CSS.escape(el.id) + '"]');
          const aria = (el.getAttribute('aria-label') || '').trim();
          const labelledBy = (el.getAttribute('aria-labelledby') || '').trim();
          if (!byFor && !aria && !labelledBy) out.push(el.outerHTML.slice(0, 160));
        }
        return out;
        """
    )


def check_accessibility(run: Run, c: Console) -> None:
    tenant = run.config["tenant"]
    c.sign_in(run.config["tokens"]["reader"])
    pages = {
        "board": f"/t/{tenant}",
        "release": f"/t/{tenant}/releases/{run.config['delayed']}",
        "entry": f"/t/{tenant}/entries/{run.config['entries'][0]}",
        "login": "/login",
    }
    problems = []
    widths = {}
    for name, path in pages.items():
        c.driver.set_window_size(1280, 900)
        c.get(path)
        if name in ("board", "release"):
            expect(c.css("form"), f"{path}: no form on the {name} page to check")
        lang = c.driver.execute_script("return document.documentElement.getAttribute('lang')")
        if not lang:
            problems.append(f"{path}: <html> has no lang")
        for control in unlabeled_controls(c):
            problems.append(f"{path}: control without label[for] or aria-label: {control}")
        c.driver.set_window_size(375, 800)
        c.get(path)
        time.sleep(0.2)
        inner, scroll = c.driver.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth]"
        )
        widths[name] = [inner, scroll]
        expect(inner <= 400, f"the window did not narrow to 375 px: innerWidth {inner}")
        if scroll > inner:
            problems.append(
                f"{path}: scrolls horizontally at {inner} px (scrollWidth {scroll}; past the edge: {c.overflowing()})"
            )
        c.shot(f"{name}-375px")
    c.driver.set_window_size(1280, 900)
    run.facts["widths375"] = widths
    expect(not problems, "; ".join(problems))


def check_pages(run: Run, c: Console) -> None:
    tenant, freeze = run.config["tenant"], run.config["freeze"]
    module, environment = run.config["module"]
    c.get(f"/t/{tenant}/freezes")
    c.shot("freezes")
    ids = [tr.get_attribute("data-freeze") for tr in c.css("table#freezes tr[data-freeze]")]
    expect(freeze in ids, f"table#freezes has no row for {freeze} (in force now): {ids}")
    c.get(f"/t/{tenant}/modules/{module}?environment={environment}")
    c.shot("module-history")
    c.one("svg#history-chart")
    rows = c.css("table#history tr")
    expect(len(rows) >= 2, f"table#history has {len(rows)} rows for {module} in {environment}")
    expect(any("RollbackTriggered" in tr.text or "Rolled" in tr.text for tr in rows), "the history shows no rollback: " + " | ".join(tr.text for tr in rows))
    # A release page's timeline links to its entries.
    c.get(f"/t/{tenant}/releases/{run.config['approve']['release']}")
    links = [a.get_attribute("href") for a in c.css("ol#timeline a[href]")]
    expect(links and all(f"/t/{tenant}/entries/" in h for h in links), f"ol#timeline links: {links}")
    c.one("#explain[data-reproduced]")
    c.one("#risk [data-points]")
    # The operator page, as an operator.
    c.sign_in(run.config["tokens"]["operator"])
    c.get("/operator")
    c.shot("operator")
    tenants = [tr.get_attribute("data-tenant") for tr in c.css("table#tenants tr[data-tenant]")]
    expect(
        tenant in tenants and run.config["otherTenant"] in tenants, f"table#tenants lists {tenants}"
    )
    # A reader is not an operator.
    c.sign_in(run.config["tokens"]["reader"])
    c.get("/operator")
    expect(c.css("#refused"), f"/operator as a reader: no #refused at {c.where()}")
    expect(c.fetch_status("/operator") == 403, "/operator as a reader is not 403")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True)
    args = parser.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    os.makedirs(config["screenshots"], exist_ok=True)
    run = Run(config)
    started = time.monotonic()
    profile = tempfile.mkdtemp(prefix="console-e2e-chromium-")
    try:
        driver = start_browser(profile)
    except Exception as error:  # noqa: BLE001
        print(json.dumps({"ok": False, "failures": [f"chromium did not start ({error}): {SETUP_HINT}"]}))
        shutil.rmtree(profile, ignore_errors=True)
        return 2
    try:
        c = Console(driver, config["console"], config["screenshots"])
        run.section("sign-in", check_sign_in, run, c)
        run.section("board", check_board, run, c)
        run.section("filters", check_filters, run, c)
        run.section("delayed", check_delayed, run, c)
        run.section("proof", check_proof, run, c)
        run.section("tampered-proof", check_tampered, run, c)
        run.section("approval", check_approval, run, c)
        run.section("release-pages", check_release_pages, run, c)
        run.section("accessibility", check_accessibility, run, c)
        run.section("pages", check_pages, run, c)
        run.section("other-tenant", check_other_tenant, run, c)
        run.section("no-credential", check_no_credential, run, c)
        run.section("http", check_http, run, c)
        run.section("live", check_live, run, c)
        run.section("revocation", check_revocation, run, c)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    summary = {
        "ok": not run.failures,
        "failures": run.failures,
        "passed": run.passed,
        "facts": run.facts,
        "screenshots": config["screenshots"],
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
