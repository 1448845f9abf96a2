"""The classify pipeline: samples -> features -> validated model -> crop maps in the cube.

:func:`run_train` is ``harvest classify train``; :func:`run_predict` is ``harvest classify
predict`` (a tile job, through the engine like ingest and indices).
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from cluster import store as cstore
from cluster.classify.features import FeatureConfig, FeatureMatrix, season_features
from cluster.classify.labels import (LabelsConfig, SampledRows, SampleWorker, load_labels, plan_sampling,
                                     samples_frame)
from cluster.classify.model import CropModel, LightGBMParams
from cluster.classify.predict import PredictConfig, PredictWorker, plan_predict, prepare_predict
from cluster.classify.samples import LabelMapping, SampleTableConfig, load_samples, map_labels, to_arrays
from cluster.classify.train import CrossValidation, ValidationConfig, report_files, train_model
from cluster.config import DEFAULT_MAX_ACTORS, StorageOptions, StrictModel, WorkerResources, as_config
from cluster.errors import ConfigError, DataError
from cluster.location import StoreLocation
from cluster.report import JobReport
from cluster.records import TileResult, plan_for_workers

__all__ = ["TrainConfig", "TrainResult", "TrainingSet", "training_set", "run_train", "run_predict", "sample_cube"]


class TrainConfig(StrictModel):
    """``harvest classify train``: labelled samples -> a model folder and its validation report."""

    model: str
    """The model folder to write (local or s3://)."""
    year: int
    """Harvest year of the labels (the season whose features are learnt)."""
    table: SampleTableConfig | None = None
    """Samples from a labelled table (long or wide); or ``labels`` + ``store``."""
    labels: LabelsConfig | None = None
    """Labelled fields or points, sampled from the cube ``store`` by the actor pool."""
    store: str | None = None
    band_names: dict[str, str] = Field(default_factory=dict)
    """Feature band -> cube array name, when sampling a cube whose names differ."""
    mapping: LabelMapping = Field(default_factory=LabelMapping)
    """Source labels -> the project's classes."""
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    lightgbm: LightGBMParams = Field(default_factory=LightGBMParams)
    storage: StorageOptions = Field(default_factory=StorageOptions)
    max_actors: int = Field(default=DEFAULT_MAX_ACTORS, ge=1)
    resources: WorkerResources = Field(default_factory=WorkerResources)
    threads: int = Field(default=0, ge=0)
    """Training threads; 0: every core."""

    @model_validator(mode="after")
    def _one_source(self) -> "TrainConfig":
        if (self.table is None) == (self.labels is None):
            raise ValueError("set exactly one sample source: 'table' (a labelled sample file) or "
                             "'labels' (fields/points) with 'store' (the cube to sample)")
        if self.labels is not None and self.store is None:
            raise ValueError("'labels' needs 'store': the cube to sample at the labels")
        return self

    def location(self) -> StoreLocation:
        """The cube to sample, read once from ``store`` and ``storage`` (as
        :meth:`cluster.config.TileJobConfig.location`)."""
        if self.store is None:
            raise ConfigError("this train config samples a table, not a cube: it has no 'store'")
        return self.storage.locate(self.store)


@dataclass
class TrainResult:
    """What ``harvest classify train`` produced."""

    model: CropModel
    report: dict[str, Any]
    """The validation report (``report.json``)."""
    cv: CrossValidation
    samples: pd.DataFrame
    """One row per sample: id, group, label, class (the training set)."""
    issues: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    def summary(self) -> str:
        r = self.report
        base = r.get("baseline", {})
        sp = r["spread"]["balanced_accuracy"]
        lines = [f"harvest classify train: {r['n_samples']} samples in {r['n_groups']} groups "
                 f"({r['folds']} folds by {r['split']['by']!r}, seeds {r['split']['seeds']}) in {self.wall_s:.0f} s",
                 f"  balanced accuracy {_f(r['balanced_accuracy'])} (folds {_f(sp['fold_min'])}-{_f(sp['fold_max'])}), "
                 f"overall {_f(r['overall_accuracy'])}, kappa {_f(r['kappa'])}"
                 + (f"; baseline (random forest, raw bands) {_f(base.get('balanced_accuracy'))}" if base else ""),
                 "  F1: " + ", ".join(f"{k} {_f(v['f1'])}" for k, v in r["per_class"].items())]
        for i in self.issues[:8]:
            lines.append(f"  note: {i}")
        for k, v in self.outputs.items():
            lines.append(f"  {k}: {v}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from cluster.report import html_card

        r = self.report
        base = r.get("baseline", {})
        sp = r["spread"]["balanced_accuracy"]
        facts = {"samples": f"{r['n_samples']} in {r['n_groups']} groups",
                 "validation": f"{r['folds']} folds by {r['split']['by']!r}, seeds {r['split']['seeds']}",
                 "balanced accuracy": f"{_f(r['balanced_accuracy'])} (folds {_f(sp['fold_min'])}-{_f(sp['fold_max'])})",
                 "overall accuracy": _f(r["overall_accuracy"]), "kappa": _f(r["kappa"]),
                 **({"baseline (random forest, raw bands)": _f(base.get("balanced_accuracy"))} if base else {}),
                 **self.outputs}
        per_class = pd.DataFrame([{"class": k, **v} for k, v in r["per_class"].items()])
        return html_card("classify train", "OK", f"{self.wall_s:.0f} s", facts, {"notes": self.issues},
                         {"per class": per_class}, rows=30)


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def sample_cube(config: TrainConfig, address: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    """Sample the cube at the labels with the actor pool; returns the long sample table."""
    from cluster.runtime import PoolOptions, ensure_ray, run_tile_tasks

    assert config.labels is not None and config.store is not None
    cube = config.location()
    labels = load_labels(config.labels, cube.storage_options)
    bands = {b: config.band_names.get(b, b) for b in config.features.bands}
    plan = plan_sampling(cube, labels, bands, config.labels)
    issues = []
    if plan.outside:
        issues.append(f"{len(plan.outside)} label(s) lie outside the cube and were not sampled "
                      f"(e.g. {list(plan.outside[:3])!r})")
    parts: list[SampledRows] = []  # the training table to be: every tile's rows are kept
    failed: list[TileResult[SampledRows]] = []

    def keep(r: TileResult[SampledRows]) -> None:
        if r.output is not None:
            parts.append(r.output)
        if r.status == "failed":
            failed.append(r)

    ensure_ray(address)
    run_tile_tasks(functools.partial(SampleWorker, plan_for_workers(plan)), plan.tiles,
                   PoolOptions(config.max_actors, config.resources), on_result=keep)
    if failed:
        raise DataError(f"sampling the cube failed on {len(failed)} tile(s), e.g. {failed[0].tile_id}: "
                        f"{failed[0].error}; fix that and rerun (a model from partial samples would be biased)")
    frame = samples_frame(plan, parts)
    sampled = set(frame.field_id.unique())
    unsampled = [f for f in plan.labels.field_id if f not in sampled]
    if unsampled:
        issues.append(f"{len(unsampled)} field(s) own no pixel centre on the grid (smaller than a pixel?) "
                      f"and gave no sample, e.g. {unsampled[:3]!r}")
    return frame, issues


def _with_group(validation: ValidationConfig, frame: pd.DataFrame) -> ValidationConfig:
    """``validation`` with its group decided: ``field_id`` where the samples have it (pixels
    of labelled fields), else ``sample_id``."""
    if validation.group is not None:
        return validation
    return validation.model_copy(update={"group": "field_id" if "field_id" in frame.columns else "sample_id"})


def _groups(frame: pd.DataFrame, validation: ValidationConfig) -> np.ndarray:
    """The validation group of each sample (one value per sample_id, in sample order)."""
    per = frame.groupby("sample_id", sort=True).first()
    if validation.group == "block":
        if not {"x", "y"} <= set(per.columns):
            raise ConfigError("validation.group 'block' needs sample coordinates (x, y); sample a cube, or "
                              "group by a column of the table")
        # the block of the field's first sampled pixel: every pixel of a field in one block
        key = per["field_id"] if "field_id" in per else per.index.to_series()
        first = per.groupby(key)[["x", "y"]].transform("first")
        bx = np.floor(first["x"].to_numpy() / validation.block_m).astype(np.int64)
        by = np.floor(first["y"].to_numpy() / validation.block_m).astype(np.int64)
        return np.array([f"{a}_{b}" for a, b in zip(bx, by, strict=True)])
    if validation.group == "sample_id":
        ids: np.ndarray = per.index.to_numpy().astype(str)
        return ids
    if validation.group not in per.columns:
        raise ConfigError(f"validation.group {validation.group!r} is not a sample column; columns: "
                          f"{sorted(c for c in per.columns if c not in ('date',))!r} (or 'sample_id', 'block')")
    groups: np.ndarray = per[validation.group].astype(str).to_numpy()
    return groups


@dataclass
class TrainingSet:
    """The samples as the model sees them: one feature row, class and group per sample."""

    features: FeatureMatrix
    y: np.ndarray
    """Class index per sample, into :attr:`classes`."""
    groups: np.ndarray
    """The validation group of each sample (``validation.group``)."""
    validation: ValidationConfig
    """The configured validation, its group decided (:func:`_with_group`)."""
    classes: list[str]
    """The configured classes that have samples, in the mapping's order."""
    per_sample: pd.DataFrame
    """One row per sample (indexed by sample id): label, class, field and group columns."""
    issues: list[str]
    source: dict[str, Any]
    """Where the samples came from (recorded in the model)."""


def training_set(config: TrainConfig, address: str | None = None) -> TrainingSet:
    """Samples (from the table, or sampled from the cube at the labels) -> season features."""
    so = config.storage.to_fsspec()
    if config.table is not None:
        loaded = load_samples(config.table, config.mapping, so)
        frame, issues = loaded.frame, list(loaded.issues)
        source: dict[str, Any] = {"table": config.table.model_dump(mode="json")}
    else:
        frame, issues = sample_cube(config, address)
        classes, unmapped = map_labels(frame.groupby("sample_id", sort=True)["label"].first(), config.mapping, so)
        frame["class"] = frame["sample_id"].map(classes)
        if unmapped:
            issues.append("unmapped labels left out: " + ", ".join(f"{k!r} ({v} samples)" for k, v in
                                                                  sorted(unmapped.items())))
        frame = frame[frame["class"].notna()]
        source = {"labels": config.labels.model_dump(mode="json") if config.labels else None,
                  "store": config.store, "band_names": config.band_names}
    per = frame.groupby("sample_id", sort=True).first()
    present = [c for c in config.mapping.classes if c in set(per["class"])]
    if len(present) < 2:
        raise DataError(f"the samples hold {len(present)} class(es) {present!r} after label mapping; "
                        "a classifier needs at least 2: check the mapping rules and the labels")
    ids, dates, values = to_arrays(frame, config.features.bands)
    per = per.reindex(ids)
    fm = season_features(values, dates, config.features, config.year)
    code = {c: i for i, c in enumerate(present)}
    y = per["class"].map(code).to_numpy().astype(np.int64)
    validation = _with_group(config.validation, frame)
    return TrainingSet(fm, y, _groups(frame, validation), validation, present, per, issues, source)


def run_train(config: TrainConfig | Mapping[str, Any] | str | Path, address: str | None = None) -> TrainResult:
    """Samples -> features -> cross-validated booster (and baseline) -> model folder.

    ``config``: a :class:`TrainConfig`, a dict as the YAML section holds, or a file's path."""
    config = as_config(TrainConfig, config)
    t0 = time.perf_counter()
    so = config.storage.to_fsspec()
    data = training_set(config, address)
    fm, y, groups, present, per = data.features, data.y, data.groups, data.classes, data.per_sample
    meta = {"trained_on": {**data.source, "year": config.year, "n_samples": int(len(y)),
                           "class_counts": {c: int((y == i).sum()) for i, c in enumerate(present)}},
            "season_year": config.year,
            "periods": [[str(a), str(b)] for a, b in fm.periods],
            # per period, the share of samples with an observation in it (prediction checks the cube has them)
            "period_observed_share": [round(float(v), 3) for v in 1 - fm.gap_filled.mean(axis=1)]}
    fields = per["field_id"].astype(str).to_numpy() if "field_id" in per else None
    model, cv = train_model(fm, y, groups, present, config.features, config.lightgbm, data.validation,
                            meta, threads=config.threads, fields=fields)
    report = cv.report(str(data.validation.group))
    model.save(config.model, so, extra_files=report_files(report, f"crop-type model, season {config.year}"))
    wall = time.perf_counter() - t0
    table = pd.DataFrame({"sample_id": per.index.to_numpy(), "group": groups, "label": per["label"].to_numpy(),
                          "class": per["class"].to_numpy()})
    return TrainResult(model, report, cv, table, data.issues + cv.notes,
                       {"model": f"{config.model}/model.txt (+ model.json)",
                        "report": f"{config.model}/report.json (+ report.md, confusion.png)"}, wall)


def run_predict(config: PredictConfig | Mapping[str, Any] | str | Path, address: str | None = None,
                progress: Callable[[TileResult], None] | None = None) -> JobReport:
    """Map crop types into the cube, tile by tile, resumable (``harvest classify predict``)."""
    from cluster.engine import run_tile_job, write_report

    config = as_config(PredictConfig, config)
    t0 = time.perf_counter()
    cube = config.location()
    model = CropModel.load(config.model, cube.storage_options)
    plan = plan_predict(config, model)
    report = run_tile_job("classify", config, plan.hash, plan.tiles,
                          functools.partial(PredictWorker, plan_for_workers(plan)), address,
                          prepare=lambda: prepare_predict(plan, config, model), on_result=progress)
    report.warnings[:0] = plan.notes  # before tile warnings: the summary shows the first few
    report.store_bytes = sum(cstore.store_bytes(cube.array(a)) for a in ("crop_type", "crop_probability"))
    write_report(report, config, t0, cube=cube.shown, arrays="crop_type, crop_probability",
                 years=", ".join(map(str, plan.years)), classes=", ".join(plan.classes))
    return report
