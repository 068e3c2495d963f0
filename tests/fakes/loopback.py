"""One way to run a test HTTP server on loopback: a daemon thread, optional TLS, a `with` block.

The GitHub, GitLab and Graph imitations and the git http-backend server all serve the same way.
Two details matter for a suite that must never hang: the TLS handshake runs in the handler
thread, not inside accept(), so a client that connects and never speaks TLS cannot stall the
accept loop; and accept() has a timeout, so a client resetting between the listener turning
readable and accept() cannot block the loop and with it shutdown() at teardown.
"""

from __future__ import annotations

import socketserver
import ssl
import threading
from types import TracebackType
from typing import Protocol, Self


class ServerCert(Protocol):
    """What the server needs from a certificate: `trustme.LeafCert` fits."""

    def configure_cert(self, ctx: ssl.SSLContext) -> None:
        """Load the certificate and its key into `ctx`."""
        ...


class LoopbackServer:
    """Serves `self._server` from a daemon thread while the `with` block runs."""

    _server: socketserver.TCPServer
    _thread: threading.Thread

    def _listen(self, server: socketserver.TCPServer, tls: ServerCert | None = None) -> str:
        """Adopt `server`, wrapping it in TLS when given a certificate; return the URL scheme."""
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.configure_cert(context)
            server.socket = context.wrap_socket(
                server.socket, server_side=True, do_handshake_on_connect=False
            )
        server.socket.settimeout(0.5)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        return "https" if tls is not None else "http"

    @property
    def port(self) -> int:
        """The port the server listens on."""
        return self._server.server_address[1]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
