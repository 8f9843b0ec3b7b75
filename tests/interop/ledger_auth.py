"""Credentials for the interop clients: a bearer token (RELEASE_LEDGER_TOKEN) on every call,
and TLS when RELEASE_LEDGER_CA_CERT names the CA bundle to verify the server with (mTLS with
RELEASE_LEDGER_CLIENT_CERT and RELEASE_LEDGER_CLIENT_KEY). Only grpcio's own API."""

from __future__ import annotations

import os

import grpc


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    def __init__(self, token: str):
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        metadata = list(details.metadata or []) + [self.header]
        return details._replace(metadata=metadata) if hasattr(details, "_replace") else _Details(details, metadata)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, requests):
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation, details, requests):
        return continuation(self._details(details), requests)


class _Details(grpc.ClientCallDetails):
    def __init__(self, details, metadata):
        self.method = details.method
        self.timeout = details.timeout
        self.metadata = metadata
        self.credentials = details.credentials
        self.wait_for_ready = getattr(details, "wait_for_ready", None)
        self.compression = getattr(details, "compression", None)


def token() -> str | None:
    value = os.environ.get("RELEASE_LEDGER_TOKEN", "").strip()
    return value or None


def channel(server: str) -> grpc.Channel:
    """A channel to host:port with the environment's TLS settings and token."""
    ca = os.environ.get("RELEASE_LEDGER_CA_CERT")
    if ca:
        cert, key = os.environ.get("RELEASE_LEDGER_CLIENT_CERT"), os.environ.get("RELEASE_LEDGER_CLIENT_KEY")
        credentials = grpc.ssl_channel_credentials(
            root_certificates=open(ca, "rb").read(),
            private_key=open(key, "rb").read() if key else None,
            certificate_chain=open(cert, "rb").read() if cert else None,
        )
        base = grpc.secure_channel(server, credentials)
    else:
        base = grpc.insecure_channel(server)
    bearer = token()
    return grpc.intercept_channel(base, _Bearer(bearer)) if bearer else base


def flight_headers() -> list[tuple[bytes, bytes]]:
    """The token as Arrow Flight call headers."""
    bearer = token()
    return [(b"authorization", f"Bearer {bearer}".encode())] if bearer else []
