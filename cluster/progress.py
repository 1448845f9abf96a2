"""Live progress of tile jobs, fed by results as they arrive on the driver.

Three modes: ``bar`` (a tqdm bar on stderr: tiles, Mpx/s, failures so far, ETA), ``json``
(one JSON line per finished tile on stderr, for schedulers and log collectors), ``none``.
The command line picks one (``--progress``) and :func:`progress_mode` makes it the mode of
every tile job run inside it; outside such a block it is ``auto``: the bar on a terminal and
in a Jupyter kernel, nothing elsewhere. Driver-side only: nothing here reaches the actors.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, Iterator, Literal

from cluster.records import TileResult

__all__ = ["MODES", "TileProgress", "progress_mode", "resolve_mode"]

Mode = Literal["bar", "json", "none"]
MODES = ("auto", "bar", "json", "none")
_MODE: ContextVar[str] = ContextVar("harvest_progress", default="auto")


def resolve_mode(mode: str, stream: IO[str] | None = None) -> Mode:
    """``auto``: a bar on a terminal or in a Jupyter kernel, nothing otherwise (CI logs, pipes).

    >>> import io
    >>> resolve_mode("auto", io.StringIO()), resolve_mode("json")
    ('none', 'json')
    """
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r} is unknown; expected one of {MODES}")
    if mode == "auto":
        return "bar" if (stream or sys.stderr).isatty() or _in_jupyter() else "none"
    return mode  # type: ignore[return-value]


def _in_jupyter() -> bool:
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None else None
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


@contextmanager
def progress_mode(mode: str) -> Iterator[None]:
    """Show tile jobs run inside this block in ``mode``."""
    resolve_mode(mode)  # an unknown mode fails here, not at the first job
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


class TileProgress:
    """One job's progress: call it with each final tile result, then :meth:`close`."""

    def __init__(self, job: str, total: int, skipped: int = 0, mode: Mode | None = None,
                 stream: IO[str] | None = None) -> None:
        self.job, self.total, self.skipped = job, total, skipped
        self.mode = resolve_mode(_MODE.get(), stream) if mode is None else mode
        self.stream = stream or sys.stderr
        self.done = self.failed = self.pixels = 0
        self.t0 = time.perf_counter()
        self._bar = None
        if self.mode == "bar" and total:
            from tqdm.auto import tqdm  # a widget in Jupyter (with ipywidgets), text elsewhere

            self._bar = tqdm(total=total, desc=f"harvest {job}", unit="tile", file=self.stream,
                             dynamic_ncols=True, leave=False)

    def __call__(self, r: TileResult) -> None:
        self.done += 1
        self.failed += r.status == "failed"
        self.pixels += r.pixels
        spent = time.perf_counter() - self.t0
        mpx = self.pixels / 1e6 / spent if spent > 0 else 0.0
        if self._bar is not None:
            # a failure is shown at once; the rest at tqdm's pace
            self._bar.set_postfix_str(f"{mpx:.1f} Mpx/s, {self.failed} failed", refresh=r.status == "failed")
            self._bar.update(1)
        elif self.mode == "json":
            eta = spent / self.done * (self.total - self.done)
            self.stream.write(json.dumps({
                "job": self.job, "tile": r.tile_id, "status": r.status, "done": self.done, "total": self.total,
                "skipped": self.skipped, "failed": self.failed, "mpx_per_s": round(mpx, 3),
                "elapsed_s": round(spent, 2), "eta_s": round(eta, 1)}) + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
