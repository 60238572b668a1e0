"""Serve optuna-dashboard (the real package, through its WSGI app) on a study storage.

optuna-dashboard has no authentication and can delete studies, so the CLI binds to
127.0.0.1 unless told otherwise. The socket is bound before anything is printed, so a
busy port is refused with one clear line instead of a traceback from a server thread.
"""

from __future__ import annotations

import errno
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tuner.errors import DashboardError
from tuner.storage import open_storage

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # The dashboard's page fires several requests at once; one thread each keeps it snappy.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise
        pass


def make_dashboard(
    storage_url: str, *, host: str = "127.0.0.1", port: int = 8080, artifact_dir: Path | None
) -> WSGIServer:
    """A bound (not yet serving) dashboard server; call ``serve_forever()`` on it.

    ``port=0`` picks a free port; read it back from ``server.server_port``.

    Example:
        >>> server = make_dashboard("sqlite:///tuner.db", port=0, artifact_dir=None)
        >>> server.server_port > 0
        True
        >>> server.server_close()
    """
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    storage = open_storage(storage_url, heartbeat=False, create=False)
    store = (
        FileSystemArtifactStore(artifact_dir) if artifact_dir and artifact_dir.is_dir() else None
    )
    app = optuna_dashboard.wsgi(storage, artifact_store=store)
    try:
        return make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise DashboardError(_bind_problem(host, port, exc)) from None


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use; choose another with --port "
            f"(e.g. --port {port + 1}) or stop the program that holds it"
        )
    if exc.errno == errno.EACCES:
        return f"not allowed to listen on port {port} (ports below 1024 need root); use --port 8080"
    reason = exc.strerror or str(exc)
    return f"cannot listen on {host}:{port} ({reason}); check --host (e.g. 127.0.0.1)"


def url_of(server: WSGIServer) -> str:
    """The address a browser opens."""
    host, port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/dashboard"
