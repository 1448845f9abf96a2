"""Structured logs: every record of a tile job names the job, its run and the tile.

Two formats, chosen by ``HARVEST_LOG_FORMAT`` (the command line reads it; a notebook calls
:func:`configure`):

* ``text`` (default): warnings and errors only, one line each (``harvest ingest [run 3f9a1c]
  tile 12_7: actor died ...``), beside the progress bar;
* ``json``: one JSON object per line on stderr from INFO up, with ``job``, ``run``, ``tile``,
  ``status``, ``seconds``, ``attempts``, ``node`` where they apply: every tile's final
  result, retries, dead actors, the job's start and end. For log collectors (Loki,
  CloudWatch, Elasticsearch) and schedulers.

``HARVEST_LOG_LEVEL`` overrides the level (``DEBUG``, ``INFO``, ...).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import IO

__all__ = ["configure", "JsonFormatter", "FIELDS"]

FIELDS = ("job", "run", "tile", "status", "seconds", "attempts", "node", "store", "tiles", "error")
"""The context a record may carry (``extra=...``); JSON lines include those present."""

_HANDLER_NAME = "harvest"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        doc.update({k: getattr(record, k) for k in FIELDS if hasattr(record, k)})
        if record.exc_info:
            doc["traceback"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        head = f"harvest {getattr(record, 'job', '')}".rstrip()
        if hasattr(record, "run"):
            head += f" [run {record.run}]"
        if hasattr(record, "tile"):
            head += f" tile {record.tile}"
        return f"{head}: {record.getMessage()}"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is now (a notebook or a test may swap it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def configure(fmt: str | None = None, level: str | int | None = None, stream: IO[str] | None = None) -> None:
    """Route the ``cluster`` loggers to ``stream`` (stderr) in ``fmt`` (default: the
    environment's, else text). Calling it again replaces the previous setting."""
    fmt = (fmt or os.environ.get("HARVEST_LOG_FORMAT") or "text").lower()
    if fmt not in ("text", "json"):
        raise ValueError(f"HARVEST_LOG_FORMAT {fmt!r} is unknown; use 'text' or 'json'")
    level = level or os.environ.get("HARVEST_LOG_LEVEL") or ("INFO" if fmt == "json" else "WARNING")
    logger = logging.getLogger("cluster")
    for h in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(h)
    handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # one line per record, not one more from the root logger
