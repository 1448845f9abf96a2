"""A fault-injecting HTTP reverse proxy for S3 tests: real HTTP on loopback, nothing mocked.

:class:`FaultProxy` listens on 127.0.0.1 (an ephemeral port unless told otherwise) and forwards
every request (GET, HEAD, PUT, POST, DELETE, ...) to an upstream S3 endpoint, in tests a moto
``ThreadedMotoServer`` on loopback. Method, path, query, headers and body go upstream unchanged,
except for the hop-by-hop headers a proxy must not forward and ``Host``, which is rewritten to the
upstream ``host:port`` (SigV4 signs ``Host``; moto does not check signatures, so this is harmless
there, but the proxy is not for endpoints that do). Clients are pointed at :attr:`endpoint`
instead of the upstream URL and talk HTTP/1.1 with keep-alive, as botocore's connection pool and
aiohttp expect.

Faults are decided once per request, from a seeded :class:`random.Random` behind a lock, so a
test run with the same seed and the same request order sees the same faults. Only requests whose
``"METHOD path?query"`` matches ``match`` (a regular expression, searched) draw from the
generator; the others are forwarded untouched. For a matching request, four numbers are drawn in
a fixed order (reset, error, status, delay) whatever the rates, so changing one rate does not
shift the sequence of the others. What an S3 client sees:

``error`` (``error_rate``)
    A 500 or 503 (``error_statuses``) with an S3 XML error body (``InternalError`` /
    ``ServiceUnavailable``) and ``Content-Length``, without the request reaching upstream; the
    connection stays usable. botocore raises ``ClientError`` once its retries are spent (it
    retries these in legacy and standard mode); s3fs maps the final 503 to
    ``OSError(errno.EBUSY)`` (``ClientError`` as ``__cause__``).
``reset`` (``reset_rate``)
    The client connection is reset (``SO_LINGER`` 0, then close: a TCP RST) without an answer
    and without forwarding. botocore raises ``ConnectionClosedError`` (urllib3 ``ProtocolError``
    "Connection aborted", ``ConnectionResetError``); aiobotocore (under s3fs) raises
    ``EndpointConnectionError``.
``delay`` (``delay_rate``, ``delay_s``)
    The proxy sleeps ``delay_s`` before acting on the request (forwarding it, or injecting the
    error or reset drawn with it). With a client ``read_timeout`` below ``delay_s`` botocore
    raises ``ReadTimeoutError``.
``down`` (:meth:`FaultProxy.down` / :meth:`FaultProxy.up`)
    The listening socket is closed and open client connections are shut down, so new connections
    are *refused* (``ECONNREFUSED``, immediately, no connect timeout involved): botocore raises
    ``EndpointConnectionError`` ("Could not connect to the endpoint URL"), after discarding the
    pooled connections it finds closed; so does aiobotocore. A request caught in flight by
    :meth:`~FaultProxy.down` sees its connection closed (``ConnectionClosedError``).
    :meth:`~FaultProxy.up` binds the same port again.

Run as a script, the proxy serves until SIGTERM/SIGINT, for tests that need it in another
process (so that it outlives, or dies independently of, the process under test)::

    python -m tests._faultproxy --upstream http://127.0.0.1:5000 --error-rate 0.3 \\
        --match '^GET /bucket/scenes/' --port-file /tmp/proxy-url

``--port-file`` receives the endpoint URL (written atomically) once the proxy is listening.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import itertools
import random
import re
import signal
import socket
import socketserver
import struct
import sys
import threading
import urllib.parse
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Sequence
from xml.sax.saxutils import escape

__all__ = ["FaultDecision", "FaultProxy", "main"]

Action = Literal["forward", "error", "reset"]

# Connection-level headers (RFC 9110 section 7.6.1) plus Expect: the proxy has already answered
# "100 Continue" and read the body itself, and it re-frames bodies with Content-Length.
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
    "te", "trailer", "transfer-encoding", "upgrade", "expect",
})
_S3_ERROR_CODES = {500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable",
                   504: "GatewayTimeout"}
_COPY_BYTES = 256 * 1024
_MAX_LINE = 65536
_KEEP: Any = object()  # "argument not given" for FaultProxy.set, where None is a real value


@dataclass(frozen=True)
class FaultDecision:
    """What the proxy decided for one request.

    Attributes:
        request: ``"METHOD path?query"`` as the client sent it.
        matched: Whether ``request`` matched the proxy's ``match`` (only then are faults drawn).
        action: ``"forward"``, ``"error"`` (answered locally) or ``"reset"``.
        status: The injected status for ``"error"``, else ``None``.
        delay_s: Seconds slept before acting (0.0 for none).
    """

    request: str
    matched: bool
    action: Action
    status: int | None = None
    delay_s: float = 0.0


@dataclass(frozen=True)
class _Faults:
    """The fault settings in force; replaced as a whole so a request sees one consistent set."""

    error_rate: float = 0.0
    reset_rate: float = 0.0
    delay_rate: float = 0.0
    delay_s: float = 0.0
    match: re.Pattern[str] | None = None
    error_statuses: tuple[int, ...] = (500, 503)

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "delay_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s!r}")
        if not self.error_statuses or not all(400 <= s <= 599 for s in self.error_statuses):
            raise ValueError(f"error_statuses must be 4xx/5xx codes, got {self.error_statuses!r}")


def _norm_match(match: str | re.Pattern[str] | None) -> re.Pattern[str] | None:
    return re.compile(match) if isinstance(match, str) else match


def _shutdown_quietly(sock: socket.socket) -> None:
    # Wakes a handler thread blocked reading the next keep-alive request (close() from another
    # thread would not), and sends the client a FIN.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its handler


class FaultProxy:
    """A reverse proxy on loopback that injects S3 errors, resets, delays and outages.

    A test helper: start it in front of a loopback S3 server and give clients its
    :attr:`endpoint`. Use as a context manager, or call :meth:`start` and :meth:`stop`.

    Args:
        upstream: ``http://host:port`` of the S3 endpoint to forward to (plain HTTP only).
        seed: Seed of the fault generator; the same seed and request order give the same faults.
        error_rate: Probability that a matching request is answered with an injected error.
        reset_rate: Probability that a matching request gets its connection reset (checked
            before ``error_rate``).
        delay_rate: Probability that a matching request is delayed by ``delay_s``.
        delay_s: Delay in seconds.
        match: Regular expression searched in ``"METHOD path?query"``; faults apply only to
            matching requests. ``None`` matches every request.
        error_statuses: Statuses an injected error picks from, uniformly.
        host: Address to listen on.
        port: Port to listen on; 0 for an ephemeral one.
        upstream_timeout_s: Socket timeout towards the upstream endpoint.
        history_size: How many recent :class:`FaultDecision` to keep for :meth:`history`.
        verbose: Log each request to stderr.
    """

    def __init__(self, upstream: str, *, seed: int | None = 0, error_rate: float = 0.0,
                 reset_rate: float = 0.0, delay_rate: float = 0.0, delay_s: float = 0.0,
                 match: str | re.Pattern[str] | None = None,
                 error_statuses: Sequence[int] = (500, 503), host: str = "127.0.0.1",
                 port: int = 0, upstream_timeout_s: float = 30.0, history_size: int = 10_000,
                 verbose: bool = False) -> None:
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"upstream must be an http://host:port URL, got {upstream!r}")
        self.upstream = upstream
        self.upstream_host: str = parts.hostname
        self.upstream_port: int = parts.port or 80
        self.upstream_netloc = f"{self.upstream_host}:{self.upstream_port}"
        self.upstream_timeout_s = upstream_timeout_s
        self.verbose = verbose
        self._host = host
        self._port = port
        self._faults = _Faults(error_rate=error_rate, reset_rate=reset_rate,
                               delay_rate=delay_rate, delay_s=delay_s, match=_norm_match(match),
                               error_statuses=tuple(error_statuses))
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._stats = dict.fromkeys(
            ("requests", "matched", "forwarded", "errors", "resets", "delays", "refused",
             "upstream_errors"), 0)
        self._history: deque[FaultDecision] = deque(maxlen=history_size)
        self._request_ids = itertools.count(1)
        self._server: _Server | None = None
        self._serve_thread: threading.Thread | None = None
        self._conns: dict[int, tuple[socket.socket, threading.Thread]] = {}
        self._down = False
        self._started = False
        self._stopping = threading.Event()  # cuts injected delays short on stop()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Start listening and serving in background threads.

        Returns:
            The endpoint URL, ``http://127.0.0.1:PORT``.
        """
        with self._lock:
            if self._started:
                raise RuntimeError("FaultProxy already started")
            self._started = True
        self._listen()
        return self.endpoint

    def stop(self) -> None:
        """Stop serving, drop client connections and wait (briefly) for handler threads."""
        self._stopping.set()
        with self._lock:
            self._down = True
            server, thread = self._server, self._serve_thread
            self._server = self._serve_thread = None
            conns = list(self._conns.values())
        _close_server(server, thread)
        for sock, _ in conns:
            _shutdown_quietly(sock)
        for _, handler_thread in conns:
            handler_thread.join(timeout=5.0)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def down(self) -> None:
        """Take the endpoint down: refuse new connections and close the open ones."""
        with self._lock:
            if self._down:
                return
            self._down = True
            server, thread = self._server, self._serve_thread
            self._server = self._serve_thread = None
            conns = list(self._conns.values())
        _close_server(server, thread)
        for sock, _ in conns:
            _shutdown_quietly(sock)

    def up(self) -> None:
        """Bring the endpoint back up on the same port after :meth:`down`."""
        with self._lock:
            if not self._started or not self._down or self._stopping.is_set():
                return
            self._down = False
        self._listen()

    @property
    def is_down(self) -> bool:
        """Whether :meth:`down` is in effect."""
        return self._down

    @property
    def port(self) -> int:
        """The listening port (0 before :meth:`start`)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """``http://host:port`` for S3 clients."""
        if not self._port:
            raise RuntimeError("FaultProxy not started")
        return f"http://{self._host}:{self._port}"

    # -- configuration and observation -----------------------------------------------------

    def set(self, *, error_rate: float = _KEEP, reset_rate: float = _KEEP,
            delay_rate: float = _KEEP, delay_s: float = _KEEP,
            match: str | re.Pattern[str] | None = _KEEP,
            error_statuses: Sequence[int] = _KEEP, seed: int | None = _KEEP) -> None:
        """Change fault settings at runtime; arguments not given keep their value.

        Args:
            error_rate: See :class:`FaultProxy`.
            reset_rate: See :class:`FaultProxy`.
            delay_rate: See :class:`FaultProxy`.
            delay_s: See :class:`FaultProxy`.
            match: See :class:`FaultProxy`; ``None`` makes every request match.
            error_statuses: See :class:`FaultProxy`.
            seed: Re-seed the fault generator.
        """
        changes: dict[str, Any] = {
            name: value for name, value in (
                ("error_rate", error_rate), ("reset_rate", reset_rate),
                ("delay_rate", delay_rate), ("delay_s", delay_s)) if value is not _KEEP}
        if match is not _KEEP:
            changes["match"] = _norm_match(match)
        if error_statuses is not _KEEP:
            changes["error_statuses"] = tuple(error_statuses)
        faults = replace(self._faults, **changes)  # validates before anything changes
        with self._lock:
            self._faults = faults
            if seed is not _KEEP:
                self._rng.seed(seed)

    def stats(self) -> dict[str, int]:
        """Counters since start (or :meth:`clear_stats`).

        Returns:
            ``requests`` (all requests read), ``matched`` (those that drew faults),
            ``forwarded`` (answered by upstream), ``errors`` (injected errors), ``resets``
            (injected resets), ``delays`` (injected delays), ``refused`` (requests dropped
            because the proxy was down) and ``upstream_errors`` (upstream unreachable: 502).
        """
        with self._lock:
            return dict(self._stats)

    def history(self) -> list[FaultDecision]:
        """The most recent decisions, oldest first."""
        with self._lock:
            return list(self._history)

    def clear_stats(self) -> None:
        """Zero the counters and forget the history (the generator keeps its state)."""
        with self._lock:
            self._stats = dict.fromkeys(self._stats, 0)
            self._history.clear()

    # -- used by the request handler -------------------------------------------------------

    def _listen(self) -> None:
        server = _Server((self._host, self._port), self)
        self._port = server.server_address[1]  # fixed from here on, so up() rebinds it
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"faultproxy-{self._port}", daemon=True)
        with self._lock:
            self._server, self._serve_thread = server, thread
        thread.start()

    def _register(self, sock: socket.socket) -> bool:
        """Track a client connection; ``False`` if the proxy went down meanwhile."""
        with self._lock:
            self._conns[id(sock)] = (sock, threading.current_thread())
            return not self._down

    def _unregister(self, sock: socket.socket) -> None:
        with self._lock:
            self._conns.pop(id(sock), None)

    def _count(self, name: str) -> None:
        with self._lock:
            self._stats[name] += 1

    def _decide(self, request: str) -> FaultDecision:
        with self._lock:
            self._stats["requests"] += 1
            faults = self._faults
            if faults.match is not None and not faults.match.search(request):
                decision = FaultDecision(request, matched=False, action="forward")
            else:
                self._stats["matched"] += 1
                # Always four draws, in this order, so one rate does not shift the others.
                u_reset, u_error, u_status, u_delay = (self._rng.random() for _ in range(4))
                status = None
                if u_reset < faults.reset_rate:
                    action: Action = "reset"
                    self._stats["resets"] += 1
                elif u_error < faults.error_rate:
                    action = "error"
                    status = faults.error_statuses[int(u_status * len(faults.error_statuses))]
                    self._stats["errors"] += 1
                else:
                    action = "forward"
                delay_s = faults.delay_s if u_delay < faults.delay_rate else 0.0
                if delay_s:
                    self._stats["delays"] += 1
                decision = FaultDecision(request, True, action, status, delay_s)
            self._history.append(decision)
            return decision

    def _next_request_id(self) -> str:
        return f"FAULTPROXY{next(self._request_ids):08d}"


def _close_server(server: _Server | None, thread: threading.Thread | None) -> None:
    if server is None:
        return
    server.shutdown()  # returns once serve_forever has left its loop
    server.server_close()  # closes the listening socket: new connections are refused
    if thread is not None:
        thread.join()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a handler stuck upstream never blocks interpreter exit
    block_on_close = False  # FaultProxy.stop() joins its own handler threads, with a timeout
    request_queue_size = 128
    allow_reuse_address = True  # up() rebinds the port while old connections sit in TIME_WAIT

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS lookup that can stall
        # on machines without a resolver; the name is only used in CGI environments.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away, or stop()/down() shut its connection: expected
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: botocore and aiohttp pool connections
    # Headers and body leave in separate writes; with Nagle on, the body waits for the client's
    # delayed ACK, adding ~40 ms to every GET.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self._accepting = self.server.proxy._register(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._unregister(self.connection)

    def handle(self) -> None:
        if not self._accepting:
            self.server.proxy._count("refused")
            self._reset()
            return
        super().handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        if self.server.proxy.verbose:
            super().log_message(format, *args)

    def _proxy(self) -> None:
        proxy = self.server.proxy
        if proxy.is_down:
            proxy._count("refused")
            self._reset()
            return
        decision = proxy._decide(f"{self.command} {self.path}")
        if decision.delay_s:
            proxy._stopping.wait(decision.delay_s)
        if decision.action == "reset" or proxy.is_down:
            self._reset()
            return
        body = self._read_body()
        if body is None:
            return  # malformed framing, already answered with 400
        if decision.action == "error":
            assert decision.status is not None
            self._send_s3_error(decision.status, "injected")
            return
        self._forward(*body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _proxy

    def _reset(self) -> None:
        """Abort the connection with a TCP RST and no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        # The descriptor is only closed (and the RST sent) once no makefile() object holds it.
        self.rfile.close()
        self.connection.close()

    def _read_body(self) -> tuple[bytes | None, list[tuple[str, str]]] | None:
        """Read the request body, undoing HTTP chunking.

        Returns:
            ``(body, trailer fields)``; ``body`` is ``None`` for a request without one, so no
            ``Content-Length`` is invented for it. ``None`` if the framing was invalid.
        """
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            try:
                return self._read_chunked()
            except ValueError:
                self.send_error(400, "bad chunked encoding")
                return None
        length = self.headers.get("Content-Length")
        if length is None:
            return None, []
        try:
            size = int(length)
            if size < 0:
                raise ValueError(length)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return None
        body = self.rfile.read(size)
        if len(body) != size:
            raise ConnectionError("client closed the connection mid-body")
        return body, []

    def _read_chunked(self) -> tuple[bytes, list[tuple[str, str]]]:
        parts = []
        while True:
            line = self.rfile.readline(_MAX_LINE)
            if not line:
                raise ConnectionError("client closed the connection mid-body")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunk = self.rfile.read(size)
            if len(chunk) != size or self.rfile.readline(_MAX_LINE).strip():
                raise ValueError("chunk shorter than announced")
            parts.append(chunk)
        # Trailer fields are kept as ordinary headers upstream (RFC 9112 section 7.1.2 lets a
        # recipient that removes the chunked coding retain them).
        trailers = []
        while (line := self.rfile.readline(_MAX_LINE)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            trailers.append((name.strip(), value.strip()))
        return b"".join(parts), trailers

    def _forward(self, body: bytes | None, trailers: list[tuple[str, str]]) -> None:
        proxy = self.server.proxy
        drop = _HOP_BY_HOP | {"host", "content-length"} | {
            token.strip().lower() for token in self.headers.get("Connection", "").split(",")}
        headers = [("Host", proxy.upstream_netloc)]
        headers += [(k, v) for k, v in self.headers.items() if k.lower() not in drop]
        if body is not None:
            headers.append(("Content-Length", str(len(body))))
        headers += trailers
        target = self.path
        if "://" in target.split("?", 1)[0]:  # absolute-form request target
            parts = urllib.parse.urlsplit(target)
            target = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        # One upstream connection per request: simple, and loopback connects are cheap.
        conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                          timeout=proxy.upstream_timeout_s)
        try:
            try:
                conn.putrequest(self.command, target, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                proxy._count("upstream_errors")
                self._send_s3_error(502, f"upstream {proxy.upstream_netloc} failed: {exc}")
                return
            proxy._count("forwarded")
            self._relay(response)
        finally:
            conn.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                self.send_header(name, value)
        if self.command == "HEAD" or response.status in (204, 304) or response.status < 200:
            if length is not None:  # for HEAD, the size of what GET would return
                self.send_header("Content-Length", length)
            self.end_headers()
            return
        if length is None or response.chunked:
            # Chunked or close-delimited upstream: buffer, then send with Content-Length.
            data = response.read()
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("Content-Length", length)
        self.end_headers()
        try:
            while chunk := response.read(_COPY_BYTES):
                self.wfile.write(chunk)
        except http.client.IncompleteRead:
            self.close_connection = True  # the client sees a short body, as from S3 itself

    def _send_s3_error(self, status: int, message: str) -> None:
        code = _S3_ERROR_CODES.get(status, "InjectedError")
        request_id = self.server.proxy._next_request_id()
        body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>").encode()
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amz-request-id", request_id)
        self.send_header("x-faultproxy", "injected" if message == "injected" else "upstream")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a :class:`FaultProxy` until SIGTERM or SIGINT.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status, 0.
    """
    parser = argparse.ArgumentParser(prog="python -m tests._faultproxy",
                                     description=__doc__.split("\n", 1)[0])
    parser.add_argument("--upstream", required=True, help="http://host:port of the S3 endpoint")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 (default) for an ephemeral port")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    parser.add_argument("--reset-rate", type=float, default=0.0)
    parser.add_argument("--delay-rate", type=float, default=0.0)
    parser.add_argument("--delay-s", type=float, default=0.0)
    parser.add_argument("--match", default=None, help='regex on "METHOD path?query"')
    parser.add_argument("--error-statuses", default="500,503",
                        help="comma-separated statuses for injected errors")
    parser.add_argument("--port-file", type=Path, default=None,
                        help="write the endpoint URL here once listening")
    parser.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = parser.parse_args(argv)

    proxy = FaultProxy(args.upstream, seed=args.seed, error_rate=args.error_rate,
                       reset_rate=args.reset_rate, delay_rate=args.delay_rate,
                       delay_s=args.delay_s, match=args.match,
                       error_statuses=[int(s) for s in args.error_statuses.split(",")],
                       host=args.host, port=args.port, verbose=args.verbose)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    endpoint = proxy.start()
    try:
        if args.port_file is not None:
            # Write then rename, so a reader polling for the file never sees half a URL.
            partial = args.port_file.with_name(args.port_file.name + ".partial")
            partial.write_text(endpoint + "\n")
            partial.replace(args.port_file)
        print(endpoint, flush=True)
        while not stop.wait(0.2):
            pass
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
