"""Map crop types: train a model from labelled samples, then classify every tile of a cube.

    harvest classify train   --config classify.yaml   # samples -> <model>/ (model.txt, model.json, report.*)
    harvest classify predict --config classify.yaml   # model + cube -> crop_type, crop_probability

Reads: ``train`` -- a labelled sample table (long or wide), or labels (points/polygons) and
the cube to sample; ``predict`` -- the model folder and the cube. Writes: the model folder
with its validation report; ``<store>/crop_type`` and ``<store>/crop_probability``
(``(time, y, x)`` uint8) and ``<store>.harvest/classify-report.json``.

The config file holds a ``train`` and/or a ``predict`` section; top-level ``model``,
``store`` and ``storage`` are shared by both.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

from pydantic import Field

from cluster.config import StorageOptions, StrictModel, load_config, parse_config
from cluster.errors import ConfigError
from cluster.progress import progress_mode
from jobs._cli import add_progress, command, overrides, parse

__all__ = ["ClassifyConfig", "main"]

_SHARED = ("model", "store", "storage")


class ClassifyConfig(StrictModel):
    """Sections are :class:`~cluster.classify.run.TrainConfig` and
    :class:`~cluster.classify.predict.PredictConfig`, minus the shared top-level keys."""

    model: str | None = None
    store: str | None = None
    storage: StorageOptions = Field(default_factory=StorageOptions)
    train: dict[str, Any] | None = None
    predict: dict[str, Any] | None = None

    def section(self, name: str) -> Any:
        from cluster.classify.predict import PredictConfig
        from cluster.classify.run import TrainConfig

        data = getattr(self, name)
        if data is None:
            raise ConfigError(f"the config has no {name!r} section; add one (see 'harvest classify --help')")
        data = dict(data)
        for key in _SHARED:
            value = getattr(self, key)
            if key not in data and value is not None:
                data[key] = value.model_dump() if hasattr(value, "model_dump") else value
        model = TrainConfig if name == "train" else PredictConfig
        return parse_config(model, data, name=f"classify.{name}")


@command("classify")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harvest classify", description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["train", "predict"])
    parser.add_argument("--config", "-c", required=True, help="YAML config file")
    parser.add_argument("--address", default=None, help="Ray cluster to join; default: a local Ray on 127.0.0.1")
    parser.add_argument("--break-lease", action="store_true", help="predict: take the store's write lease "
                        "even if another job seems to hold it (only when that job is known to be dead)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.year=2024 (repeatable)")
    add_progress(parser)
    args = parse(parser, argv)
    config = load_config(ClassifyConfig, args.config, {k: v for k, v in overrides(args).items()
                                                      if k != "break_lease"})
    section = config.section(args.step)
    if args.step == "train":
        from cluster.classify.run import run_train

        result = run_train(section, address=args.address)
        print(result.summary())
        return 0
    from cluster.classify.run import run_predict

    if args.break_lease:
        section = section.model_copy(update={"break_lease": True})
    with progress_mode(args.progress):
        report = run_predict(section, address=args.address)
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
