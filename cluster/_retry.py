"""Transient or definite: how an object-storage error is classified, and retries with backoff.

The rule (design.md, "Transient is not bad"): 5xx answers, throttling, connection resets,
refused connections and timeouts are *transient* and retried with backoff and jitter; only
a definite answer (404, 403, a corrupt file) may reject an input or fail a tile for good.
Errors arrive wrapped several times (botocore -> s3fs -> zarr or GDAL), so the
classification walks the whole ``__cause__`` / ``__context__`` chain and, where a library
drops the chain, reads the message.

Imports no Ray and no storage library at module level: it only inspects exceptions.
"""

from __future__ import annotations

import errno
import random
import re
import time
from typing import Callable, Iterator, TypeVar

__all__ = ["is_transient", "endpoint_of", "http_status_of", "retry_transient", "retry_storage", "backoff_s"]

_T = TypeVar("_T")

_TRANSIENT_CODES = {
    "InternalError", "ServiceUnavailable", "SlowDown", "Throttling", "ThrottlingException",
    "RequestTimeout", "RequestTimeTooSkewed", "RequestLimitExceeded", "TooManyRequests",
    "BandwidthLimitExceeded", "ProvisionedThroughputExceededException",
}
_TRANSIENT_ERRNOS = {errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.ETIMEDOUT,
                     errno.EPIPE, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN,
                     errno.EAGAIN, getattr(errno, "EREMOTEIO", errno.EIO)}
_TRANSIENT_NAMES = {
    # botocore / urllib3 / aiohttp / asyncio class names: matched by name so that this
    # module needs none of those libraries (and a missing one is not an import error)
    "EndpointConnectionError", "ConnectionClosedError", "ReadTimeoutError", "ConnectTimeoutError",
    "ConnectionError", "HTTPClientError", "ProxyConnectionError", "ResponseStreamingError",
    "IncompleteReadError", "IncompleteRead", "ServerDisconnectedError", "ClientConnectorError",
    "ClientOSError", "ClientPayloadError", "ServerTimeoutError", "FSTimeoutError", "TimeoutError",
    "ConnectionResetError", "ConnectionRefusedError", "ConnectionAbortedError", "BrokenPipeError",
    "StorageUnavailableError",  # ours (cluster.errors): raised after a read was classified
}
_TRANSIENT_TEXT = re.compile(
    r"\b(50[0234])\b|service ?unavailable|slow ?down|throttl|internal ?error|"
    r"connection (was )?(reset|refused|aborted|closed)|could not connect to the endpoint|"
    r"server ?disconnected|timed? ?out|read timeout|connect timeout|broken pipe|"
    r"temporarily unavailable|too many requests",
    re.IGNORECASE,
)
_DEFINITE_TEXT = re.compile(r"\b(40[034])\b|access ?denied|forbidden|no ?such ?(key|bucket)|not found",
                            re.IGNORECASE)
_ENDPOINT = re.compile(r"(https?://[^\s'\"/]+)")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo += [e.__cause__, e.__context__]


def _http_status(e: BaseException) -> int | None:
    response = getattr(e, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    status = getattr(e, "status", None)  # aiohttp
    return status if isinstance(status, int) else None


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or anything in its cause chain) says "try again later".

    A definite answer anywhere in the chain (HTTP 403/404, a missing file) wins over
    transient-looking text, so a missing object is never retried forever.

    >>> is_transient(ConnectionResetError(104, "Connection reset by peer"))
    True
    >>> is_transient(FileNotFoundError("s3://bucket/scene.tif"))
    False
    >>> is_transient(OSError("Service Unavailable (503)"))
    True
    >>> is_transient(ValueError("not a TIFF file"))
    False
    """
    transient = False
    for e in _chain(exc):
        if isinstance(e, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)):
            return False
        status = _http_status(e)
        if status is not None:
            if status in (403, 404):
                return False
            if status >= 500 or status in (408, 429):
                transient = True
        response = getattr(e, "response", None)
        if isinstance(response, dict):
            code = response.get("Error", {}).get("Code")
            if code in _TRANSIENT_CODES:
                transient = True
            elif code in ("AccessDenied", "NoSuchKey", "NoSuchBucket", "404", "403"):
                return False
        if type(e).__name__ in _TRANSIENT_NAMES or isinstance(e, (ConnectionError, TimeoutError)):
            transient = True
        if isinstance(e, OSError) and e.errno in _TRANSIENT_ERRNOS:
            transient = True
        text = str(e)
        if _DEFINITE_TEXT.search(text) and not _TRANSIENT_TEXT.search(text):
            return False
        if _TRANSIENT_TEXT.search(text):
            transient = True
    return transient


def http_status_of(exc: BaseException) -> int | None:
    """The first HTTP status found in the exception's cause chain (botocore keeps it in
    ``response``), or None."""
    for e in _chain(exc):
        status = _http_status(e)
        if status is not None:
            return status
    return None


def endpoint_of(exc: BaseException, default: str | None = None) -> str | None:
    """The endpoint URL an error names (botocore puts it in connection errors), else ``default``.

    >>> endpoint_of(OSError('Could not connect to the endpoint URL: "http://127.0.0.1:9/b/k"'))
    'http://127.0.0.1:9'
    """
    for e in _chain(exc):
        m = _ENDPOINT.search(str(e))
        if m:
            return m.group(1)
    return default


def backoff_s(attempt: int, base_s: float = 0.25, max_s: float = 8.0,
              rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in ``[0, min(max_s, base_s * 2**attempt)]``.

    Jitter keeps many workers that failed together from retrying together (AWS
    Architecture Blog, "Exponential Backoff And Jitter").

    >>> 0.0 <= backoff_s(3, rng=random.Random(0)) <= 2.0
    True
    """
    cap = min(max_s, base_s * (2 ** attempt))
    return (rng or random).uniform(0.0, cap)


def retry_transient(fn: Callable[[], _T], *, attempts: int = 5, base_s: float = 0.25,
                    max_s: float = 8.0, on_retry: Callable[[int, BaseException], None] | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> _T:
    """Call ``fn()``; on a transient error wait (backoff with jitter) and call again.

    Definite errors propagate at once; the last transient error propagates when
    ``attempts`` calls have failed.

    >>> calls = []
    >>> def flaky():
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise ConnectionResetError("reset")
    ...     return "ok"
    >>> retry_transient(flaky, sleep=lambda s: None), len(calls)
    ('ok', 3)
    """
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 — classified below, re-raised when definite
            if attempt == attempts - 1 or not is_transient(e):
                raise
            if on_retry is not None:
                on_retry(attempt + 1, e)
            sleep(backoff_s(attempt, base_s, max_s))
    raise AssertionError("unreachable")  # pragma: no cover


_DEFINITE_FS = (FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError)


def retry_storage(fn: Callable[[], _T], what: str, attempts: int = 6) -> _T:
    """A storage metadata operation with transient errors retried.

    Definite filesystem answers (not found, already exists) pass through unchanged, for the
    caller to act on; every other error becomes a :class:`~cluster.errors.StoreError` that
    starts with ``what``, says whether storage failed to answer, and names the endpoint.
    """
    from cluster.errors import StoreError

    try:
        return retry_transient(fn, attempts=attempts)
    except _DEFINITE_FS:
        raise
    except Exception as e:  # noqa: BLE001 — every other error is that error, never "absent"
        kind = "object storage did not answer" if is_transient(e) else "failed"
        where = endpoint_of(e)
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StoreError(f"{what}: {kind} ({type(e).__name__}: {text})"
                         + (f" [endpoint {where}]" if where else "")
                         + "; nothing was changed. Check the endpoint and credentials, then rerun") from e
