#!/usr/bin/env python3
"""Measures how `release-ledger serve` treats connections that never speak, at its file limit.

    scripts/measure-connections.py [BINARY]    # default: the release build in the shared target dir

Starts the server with `ulimit -n 128` in a fresh data dir, opens silent TCP connections until a
connect times out (the server's descriptors and then its listen backlog are full), and reports
the server's CPU use over 2 s in that state (a spinning accept loop uses a whole core), how long
after the connections close it answers an HTTP/2 handshake again, and, with
`--handshake-timeout-seconds 2` when the binary has that flag, how long a silent connection
stays open (null: still open after 15 s). Standard library only.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time

BINARY = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/release-ledger-target/release/release-ledger"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # + empty SETTINGS
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def handshake(addr, timeout):
    """Seconds until the server answers the preface with a frame, or None."""
    started = time.monotonic()
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(PREFACE)
            return time.monotonic() - started if s.recv(9) else None
    except OSError:
        return None


def start(tmp, name, extra):
    server = subprocess.Popen(
        ["sh", "-c", 'ulimit -n 128 && exec "$0" "$@"', BINARY, "serve", "--json", "--listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0", "--data-dir", os.path.join(tmp, name), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    host, port = json.loads(server.stdout.readline())["server"]["grpc"].rsplit(":", 1)
    return server, (host, int(port))


def silent_connection(tmp, extra):
    """Seconds a connection that sends nothing stays open (None: still open after 15 s)."""
    server, addr = start(tmp, "silent", extra)
    try:
        with socket.create_connection(addr) as silent:
            started = time.monotonic()
            silent.settimeout(15)
            try:
                # The server speaks first (its SETTINGS frame): read until it closes.
                while silent.recv(64):
                    pass
            except socket.timeout:
                return None
            except ConnectionResetError:
                pass
            return round(time.monotonic() - started, 2)
    finally:
        server.kill()
        server.wait()


def fd_limit(tmp, extra):
    server, addr = start(tmp, "fd", extra)
    try:
        held = []
        while len(held) < 600:
            try:
                held.append(socket.create_connection(addr, timeout=0.5))
            except OSError:
                break
        time.sleep(0.5)
        result = {"connectionsOpened": len(held), "serverDescriptorsAtLimit": len(os.listdir(f"/proc/{server.pid}/fd"))}
        before, started = cpu_seconds(server.pid), time.monotonic()
        time.sleep(2)
        result["cpuShareAtFdLimit"] = round((cpu_seconds(server.pid) - before) / (time.monotonic() - started), 3)
        for s in held:
            s.close()
        closed = time.monotonic()
        while time.monotonic() - closed < 30 and handshake(addr, 1) is None:
            time.sleep(0.1)
        result["answersAgainAfterSeconds"] = round(time.monotonic() - closed, 2)
        return result
    finally:
        server.kill()
        server.wait()


def main():
    has_flag = "--handshake-timeout-seconds" in subprocess.run(
        [BINARY, "serve", "--help"], capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as tmp:
        result = {"binary": BINARY, "handshakeTimeoutFlag": has_flag}
        # A binary without the flag has no handshake timeout: the connection should close never.
        result["silentConnectionClosedAfterSeconds"] = silent_connection(
            tmp, ["--handshake-timeout-seconds", "2"] if has_flag else [])
        # Silent connections must stay for the measurement: a long handshake timeout.
        result.update(fd_limit(tmp, ["--handshake-timeout-seconds", "120"] if has_flag else []))
        print(json.dumps(result))


if __name__ == "__main__":
    main()
