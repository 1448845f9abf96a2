"""Job reports: counters, timings, what was rejected and why. JSON beside the store."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import cluster
from cluster.config import mask_secrets
from cluster.records import SummarizedOutput, TileResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["JobReport", "html_card"]


MAX_TILE_ENTRIES = 2000
"""Per-tile entries a report keeps (besides retried and failed tiles): bounds the driver's
memory (~3 KB per entry) whatever the size of the plan."""

MAX_TILE_WARNINGS = 200
"""Distinct tile warnings a report keeps; a repeat of one it has is counted, not stored, and
the rest are counted in ``warnings_dropped`` (a warning on each of 100,000 tiles must not
grow the driver by 100,000 strings)."""


@dataclass
class JobReport:
    """What a tile job did. ``ok`` is False when any tile failed."""

    job: str
    store: str
    plan_hash: str = ""
    version: str = cluster.__version__
    started_at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    wall_s: float = 0.0
    tiles_total: int = 0
    tiles_done: int = 0
    tiles_empty: int = 0
    tiles_skipped: int = 0
    tiles_failed: int = 0
    retries: int = 0
    """Tile starts beyond the first (an actor died, or storage did not answer)."""
    actors_replaced: int = 0
    stopped: str | None = None
    """Why the job stopped before every tile was tried (storage down, lease lost)."""
    errors: list[str] = field(default_factory=list)
    """Job-level failures found after the tiles ran (e.g. every tile empty): not OK."""
    inputs_used: int = 0
    inputs_rejected: list[dict[str, str]] = field(default_factory=list)
    bytes_written: int = 0
    store_bytes: int = 0
    peak_actor_rss_mib: float = 0.0
    """The largest peak resident memory of any tile actor (what resources.memory_mib must allow)."""
    pixels: int = 0
    timings_s: dict[str, float] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    warnings_dropped: int = 0
    """Tile warnings not kept: repeats of one in ``warnings``, and those past
    :data:`MAX_TILE_WARNINGS` distinct ones."""
    tiles_per_node: dict[str, int] = field(default_factory=dict)
    tiles: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    _seen_warnings: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    tables: dict[str, "pd.DataFrame"] = field(default_factory=dict, repr=False, compare=False)
    """What the job computed for the caller (``aggregate``: ``statistics``, ``crop_areas``);
    written to the paths in ``outputs``, never into the JSON report."""

    @property
    def table(self) -> "pd.DataFrame | None":
        """The first of ``tables`` (``aggregate``: the statistics per region, crop and date), if any."""
        return next(iter(self.tables.values()), None)

    @property
    def ok(self) -> bool:
        """Every tile done or empty, nothing stopped early."""
        return self.tiles_failed == 0 and self.stopped is None and not self.errors

    @property
    def mpix_per_s(self) -> float:
        return self.pixels / 1e6 / self.wall_s if self.wall_s > 0 else 0.0

    def add_results(self, results: Iterable[TileResult]) -> None:
        for r in results:
            self.add_result(r)

    def add_result(self, r: TileResult) -> None:
        """Count one tile's final result (small: pixels and partials never land here)."""
        if r.status == "done":
            self.tiles_done += 1
        elif r.status == "empty":
            self.tiles_empty += 1
        else:
            self.tiles_failed += 1
            fix = ("object storage did not answer; rerun when it does (done tiles are skipped)"
                   if r.retryable else "see the error; fix the input, then rerun to retry failed tiles")
            failure = {"tile": r.tile_id, "error": r.error or "unknown error", "fix": fix,
                       "attempts": r.attempts}
            if r.traceback:
                failure["traceback"] = r.traceback
            self.failures.append(failure)
        self.bytes_written += r.bytes_written
        self.pixels += r.pixels
        self.peak_actor_rss_mib = max(self.peak_actor_rss_mib, r.peak_rss_mib)
        for k, v in r.timings_s.items():
            self.timings_s[k] = self.timings_s.get(k, 0.0) + v
        for w in r.warnings:
            if w in self._seen_warnings or len(self._seen_warnings) >= MAX_TILE_WARNINGS:
                self.warnings_dropped += 1
            else:
                self._seen_warnings.add(w)
                self.warnings.append(w)
        if r.node_id:
            self.tiles_per_node[r.node_id] = self.tiles_per_node.get(r.node_id, 0) + 1
        # per-tile detail for the first tiles and every tile that needed a retry; the rest is in
        # the counters (and each done tile's manifest record): the driver's memory must not
        # grow with a continent's 100,000 tiles
        if len(self.tiles) < MAX_TILE_ENTRIES or r.attempts > 1 or r.status == "failed":
            entry = {"tile": r.tile_id, "status": r.status, "seconds": round(r.seconds, 4),
                     "node_id": r.node_id, "pid": r.pid, "bytes_written": r.bytes_written,
                     "attempts": r.attempts}
            # the job's typed output shows only through its summary (small, JSON-able); big
            # outputs (aggregation partials, sampled rows) define none and stay out
            if isinstance(r.output, SummarizedOutput):
                entry["output"] = r.output.summary()
            self.tiles.append(entry)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, tables={}))
        del d["tables"], d["_seen_warnings"]
        d["ok"] = self.ok
        d["mpix_per_s"] = round(self.mpix_per_s, 3)
        d["config"] = mask_secrets(self.config)
        return d

    def _status(self) -> str:
        if not self.ok:
            return "FAILED" if self.stopped or not (self.tiles_done + self.tiles_empty) else "PARTIAL"
        return f"OK, {len(self.inputs_rejected)} input(s) rejected" if self.inputs_rejected else "OK"

    def summary(self) -> str:
        lines = [
            f"harvest {self.job}: {self._status()} in {self.wall_s:.1f} s -> {self.store}",
            f"  tiles: {self.tiles_done} done, {self.tiles_empty} empty, {self.tiles_skipped} skipped "
            f"(already done), {self.tiles_failed} failed, of {self.tiles_total}"
            + (f"; {self.retries} retried" if self.retries else "")
            + (f", {self.actors_replaced} dead actor(s) replaced" if self.actors_replaced else ""),
        ]
        if self.stopped:
            lines.append(f"  stopped early: {self.stopped}")
        for e in self.errors:
            lines.append(f"  error: {e}")
        if self.inputs_used or self.inputs_rejected:
            lines.append(f"  inputs: {self.inputs_used} used, {len(self.inputs_rejected)} rejected")
        lines += [
            f"  written: {self.bytes_written / 1e6:.1f} MB raw, "
            f"{f'{self.store_bytes / 1e6:.1f}' if self.store_bytes >= 0 else '?'} MB stored; "
            f"{self.mpix_per_s:.1f} Mpx/s"
            + (f"; peak actor memory {self.peak_actor_rss_mib:,.0f} MiB" if self.peak_actor_rss_mib else ""),
        ]
        if self.timings_s:
            total = sum(self.timings_s.values()) or 1.0
            parts = ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in
                              sorted(self.timings_s.items(), key=lambda kv: -kv[1]))
            lines.append(f"  worker time: {parts}")
        if len(self.tiles_per_node) > 1:
            per_node = ", ".join(f"{v} tiles" for v in self.tiles_per_node.values())
            lines.append(f"  nodes: {len(self.tiles_per_node)} ({per_node})")
        for r in self.inputs_rejected[:10]:
            lines.append(f"  rejected {r['item']}: {r['reason']} ({r['fix']})")
        if len(self.inputs_rejected) > 10:
            lines.append(f"  ... and {len(self.inputs_rejected) - 10} more rejected (see the JSON report)")
        for f in self.failures[:10]:
            lines.append(f"  failed tile {f['tile']}: {f['error']}")
        for w in self.warnings[:5]:
            lines.append(f"  warning: {w}")
        more = len(self.warnings) - 5 + self.warnings_dropped
        if more > 0:
            lines.append(f"  ... and {more} more warning(s) (repeats counted, not listed; see the JSON report)")
        for k, v in self.outputs.items():
            lines.append(f"  {k}: {v}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        facts: dict[str, Any] = {
            "tiles": f"{self.tiles_done} done, {self.tiles_empty} empty, {self.tiles_skipped} skipped "
                     f"(already done), {self.tiles_failed} failed, of {self.tiles_total}",
            "retries": self.retries or None,
            "inputs": f"{self.inputs_used} used, {len(self.inputs_rejected)} rejected"
                      if self.inputs_used or self.inputs_rejected else None,
            "written": f"{self.bytes_written / 1e6:.1f} MB raw, {self.store_bytes / 1e6:.1f} MB stored"
                       if self.bytes_written else None,
            "speed": f"{self.mpix_per_s:.1f} Mpx/s",
            "peak actor memory": f"{self.peak_actor_rss_mib:,.0f} MiB" if self.peak_actor_rss_mib else None,
            **self.outputs}
        problems = {"errors": self.errors + ([f"stopped early: {self.stopped}"] if self.stopped else []),
                    "failed tiles": [f"{f['tile']}: {f['error']}" for f in self.failures],
                    "rejected inputs": [f"{r['item']}: {r['reason']} ({r['fix']})" for r in self.inputs_rejected],
                    "warnings": self.warnings}
        return html_card(f"harvest {self.job} &rarr; {html.escape(self.store)}", self._status(),
                         f"{self.wall_s:.1f} s", facts, problems, self.tables)


def html_card(title: str, status: str, subtitle: str, facts: Mapping[str, Any],
              lists: Mapping[str, Sequence[str]], tables: Mapping[str, "pd.DataFrame"],
              rows: int = 10) -> str:
    """A result as Jupyter shows it: a title with its status, a key/value table, the
    non-empty lists (folded when long) and the first rows of each table. ``title`` is HTML;
    everything else is escaped; facts whose value is None are left out."""
    ok = status.startswith("OK")
    colour = "#2e7d32" if ok else "#c62828"
    parts = ['<div style="font-family:sans-serif;font-size:13px;max-width:980px">',
             f'<div><b>{title}</b> <span style="color:#fff;background:{colour};padding:1px 6px;'
             f'border-radius:3px">{html.escape(status)}</span> '
             f'<span style="color:#666">{html.escape(subtitle)}</span></div>',
             '<table style="margin:4px 0">']
    for k, v in facts.items():
        if v is None:
            continue
        parts.append(f'<tr><td style="text-align:left;color:#555;padding-right:12px">{html.escape(str(k))}</td>'
                     f'<td style="text-align:left">{html.escape(str(v))}</td></tr>')
    parts.append("</table>")
    for name, items in lists.items():
        if not items:
            continue
        shown = "".join(f"<li>{html.escape(str(i))}</li>" for i in items[:50])
        more = f"<li>... and {len(items) - 50} more</li>" if len(items) > 50 else ""
        parts.append(f"<details{' open' if len(items) <= 5 else ''}><summary>{html.escape(name)} "
                     f"({len(items)})</summary><ul>{shown}{more}</ul></details>")
    for name, df in tables.items():
        parts.append(f"<details open><summary>{html.escape(name)}: {len(df):,} rows "
                     f"(first {min(rows, len(df))})</summary>"
                     f"{df.head(rows).to_html(index=False, border=0, float_format=_number, na_rep='')}</details>")
    parts.append("</div>")
    return "".join(parts)


def _number(v: float) -> str:
    """Four significant digits, thousands separated: what a reader compares at a glance."""
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.4g}"
