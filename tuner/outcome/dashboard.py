"""Serve optuna-dashboard (the real package, through its WSGI app) on a study storage.

optuna-dashboard has no authentication and can delete studies, so the CLI binds to
127.0.0.1 unless told otherwise, and the app is wrapped (:func:`guarded`): read-only
unless writes are allowed, and only for requests whose Host header names this server, so
a web page cannot reach it through DNS rebinding. The socket is bound before anything is
printed, so a busy port is refused with one clear line instead of a traceback from a
server thread.
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tuner.errors import DashboardError
from tuner.storage import open_storage

LOOPBACK = ("127.0.0.1", "localhost", "::1")

READS = ("GET", "HEAD")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    # The dashboard's page fires several requests at once; one thread each keeps it snappy.
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one line per request is noise
        pass


def make_dashboard(
    storage_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifact_dir: Path | None,
    allow_writes: bool = False,
    allowed_hosts: Iterable[str] = (),
) -> WSGIServer:
    """A bound (not yet serving) dashboard server; call ``serve_forever()`` on it.

    ``port=0`` picks a free port; read it back from ``server.server_port``. Requests
    that would change the storage are refused unless ``allow_writes``; requests for
    another Host than ``host``, loopback names and ``allowed_hosts`` are refused.

    Example:
        >>> server = make_dashboard("sqlite:///tuner.db", port=0, artifact_dir=None)
        >>> server.server_port
    """
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    storage = open_storage(storage_url, heartbeat=False, create=False)
    store = (
        FileSystemArtifactStore(artifact_dir) if artifact_dir and artifact_dir.is_dir() else None
    )
    app = guarded(
        optuna_dashboard.wsgi(storage, artifact_store=store),
        hosts={host, *allowed_hosts},
        allow_writes=allow_writes,
    )
    try:
        return make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
    except OSError as exc:
        raise DashboardError(_bind_problem(host, port, exc)) from None


def guarded(app: WSGIApp, *, hosts: Iterable[str], allow_writes: bool) -> WSGIApp:
    """The WSGI ``app`` answering only requests for ``hosts`` (loopback names and IP
    addresses too), and only reads (GET, HEAD) unless ``allow_writes``; writes only from
    this dashboard's own pages (the Origin header, when there is one).

    optuna-dashboard has neither check; a small WSGI wrapper is all it takes. An IP
    address in the Host header is safe: DNS rebinding needs a name the attacker controls.

    Example:
        >>> app = guarded(optuna_dashboard.wsgi(storage), hosts={"127.0.0.1"},
        ...               allow_writes=False)
    """
    names = {_hostname(h) for h in (*hosts, *LOOPBACK)}

    def app_or_refusal(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        host = environ.get("HTTP_HOST", "")
        if _hostname(host) not in names and not _is_ip(_hostname(host)):
            return _refuse(
                start_response,
                f"Host {host!r} is not this dashboard's address; if it is (a proxy's name), "
                f"start it with --allowed-host {_hostname(host) or 'NAME'}",
            )
        if environ.get("REQUEST_METHOD") in READS:
            return app(environ, start_response)
        if not allow_writes:
            return _refuse(
                start_response,
                "this dashboard is read-only: start it with --allow-writes to create, "
                "rename or delete studies from the page",
            )
        # A page on another site may still send a POST to a loopback address (CSRF):
        # browsers name that page in Origin.
        origin = environ.get("HTTP_ORIGIN")
        if origin and urlsplit(origin).netloc.lower() != host.lower():
            return _refuse(start_response, f"a write from another site ({origin}) is refused")
        return app(environ, start_response)

    return app_or_refusal


def _hostname(host: str) -> str:
    """``name`` of a Host header ``name:port``, ``[::1]:port`` or a bare address."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        host = host.split(":")[0]
    return host.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _refuse(start_response: Callable[..., Any], why: str) -> list[bytes]:
    body = (why + "\n").encode()
    start_response(
        "403 Forbidden",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]


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
