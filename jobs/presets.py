"""List the sensor presets: each preset's band names, the file token that finds each band,
its DN scaling, nodata and valid range, and the cloud-mask rule.

    harvest presets                      # every preset
    harvest presets sentinel2-l2a        # one
    harvest presets --json               # the same as JSON
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from cluster.scenes import SENSORS

__all__ = ["describe", "main"]


def describe(name: str) -> dict[str, Any]:
    """One preset as plain data (what ``--json`` prints)."""
    preset = SENSORS[name]
    mask: dict[str, Any] | None = None
    if preset.mask:
        mask = preset.mask.model_dump(exclude_none=True, exclude_defaults=True)
        mask["band"] = preset.mask.band
    return {"name": name, "note": preset.note, "mask": mask,
            "bands": {b: spec.model_dump(exclude_none=True, exclude_defaults=True) | {"file": spec.file}
                      for b, spec in preset.bands.items()}}


def _text(d: dict[str, Any]) -> str:
    lines = [f"{d['name']}: {d['note']}"]
    for band, spec in d["bands"].items():
        scale = f"x{spec['scale']:g}{spec.get('offset', 0):+g}" if "scale" in spec else "as stored"
        extra = (f", nodata {spec['nodata']:g}" if "nodata" in spec else "") + (
            f", valid {spec['valid_range'][0]:g}..{spec['valid_range'][1]:g}" if "valid_range" in spec else "")
        lines.append(f"  {band:10s} file token {spec['file']!r:20s} {scale}{extra}")
    m = d["mask"]
    rule = ("none (the product is already cloud-screened)" if m is None else
            f"band {m['band']!r}, " + "; ".join(f"{k.replace('_', ' ')} {v}" for k, v in m.items() if k != "band"))
    lines.append(f"  mask: {rule}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harvest presets", description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="one preset (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    names = [args.name] if args.name else list(SENSORS)
    unknown = [n for n in names if n not in SENSORS]
    if unknown:
        print(f"harvest presets: no preset {unknown[0]!r}; known: {', '.join(SENSORS)}", file=sys.stderr)
        return 2
    docs = [describe(n) for n in names]
    print(json.dumps(docs if not args.name else docs[0], indent=1) if args.json else "\n\n".join(map(_text, docs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
