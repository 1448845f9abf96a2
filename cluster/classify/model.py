"""The crop-type model: a LightGBM booster plus the record of what it was trained on.

Why LightGBM: native missing values (a cloudy season leaves NaN features, no imputation),
fast multithreaded training and prediction, and a plain-text model format. The model
folder holds

* ``model.txt``: the booster in LightGBM's own text format;
* ``model.json``: classes, feature names and definition, library versions, the data it
  came from, the validation summary, and the format version;
* ``report.json``, ``report.md``, ``confusion.png``: the validation report.

No pickle anywhere: a model folder read from object storage is data, never code. A folder
written by another *major* format version is refused with a message that says so.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import Field

from cluster import store as cstore
from cluster.classify.features import FeatureConfig
from cluster.config import StrictModel
from cluster.errors import ConfigError

__all__ = ["MODEL_FORMAT", "LightGBMParams", "CropModel", "fit_booster", "fit_random_forest"]

MODEL_FORMAT = "harvest-crop-model/1"
"""Name and major version of the model folder's layout; bump the major on breaking changes."""


class LightGBMParams(StrictModel):
    """Booster settings; the defaults suit a few hundred to a few hundred thousand samples."""

    n_estimators: int = Field(default=150, ge=1)
    """Boosting rounds. Fixed (no early stopping on the validation folds: that would leak
    them into the model whose accuracy they report). 150 at rate 0.1 validated as well as
    300 at 0.05 on the demo and the WorldCereal table, and predicts twice as fast."""
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2)
    min_child_samples: int | None = Field(default=None, ge=1)
    """Samples a leaf needs. None: half the rarest class's training samples, between 2 and
    10, so that a class of a handful of fields can still get a leaf of its own (10, LightGBM's
    usual floor, forbids any split on 18 samples)."""
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    lambda_l2: float = Field(default=1.0, ge=0)
    class_weight: str | None = "balanced"
    """``balanced`` weighs classes by inverse frequency, so rare crops are not ignored."""


def _lgb_params(params: LightGBMParams, n_classes: int, seed: int, threads: int,
                y: np.ndarray | None = None) -> dict[str, Any]:
    min_child = params.min_child_samples
    if min_child is None:
        counts = np.bincount(y, minlength=n_classes) if y is not None else np.array([20])
        rarest = int(counts[counts > 0].min()) if (counts > 0).any() else 20
        min_child = int(np.clip(rarest // 2, 2, 10))
    return {
        "objective": "multiclass", "num_class": n_classes, "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves, "min_child_samples": min_child, "min_data_in_bin": 1,
        "feature_fraction": params.feature_fraction, "bagging_fraction": params.bagging_fraction,
        "bagging_freq": 1 if params.bagging_fraction < 1 else 0, "lambda_l2": params.lambda_l2,
        "seed": seed, "deterministic": True, "force_row_wise": True, "num_threads": threads,
        "verbosity": -1,
    }


def _weights(y: np.ndarray, n_classes: int, mode: str | None) -> np.ndarray | None:
    if mode != "balanced":
        return None
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n_classes * np.maximum(counts, 1)), 0.0)
    weights: np.ndarray = w[y]
    return weights


def fit_booster(X: np.ndarray, y: np.ndarray, n_classes: int, params: LightGBMParams, *,
                seed: int = 0, threads: int = 0, feature_names: Sequence[str] | None = None) -> Any:
    """Train a multiclass LightGBM booster on ``X`` (N, F) float32 with labels ``y`` in
    ``0..n_classes-1``; NaN features are missing values."""
    import lightgbm as lgb

    data = lgb.Dataset(X, label=y, weight=_weights(y, n_classes, params.class_weight),
                       feature_name=list(feature_names) if feature_names else "auto",
                       params={"verbosity": -1}, free_raw_data=True)
    return lgb.train(_lgb_params(params, n_classes, seed, threads, y), data,
                     num_boost_round=params.n_estimators)


def fit_random_forest(X: np.ndarray, y: np.ndarray, *, seed: int = 0, threads: int = -1) -> Any:
    """The baseline: a random forest on raw per-period band values (the EUCROPMAP method:
    d'Andrimont et al. 2021, 500 trees), class-balanced like the booster."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=500, n_jobs=threads, random_state=seed,
                                class_weight="balanced", min_samples_leaf=1)
    return rf.fit(X, y)


@dataclass
class CropModel:
    """A trained classifier and everything needed to apply it to a cube or a table."""

    booster: Any
    """A ``lightgbm.Booster``."""
    classes: tuple[str, ...]
    """Class names; class code ``i`` in ``crop_type`` is ``classes[i]``."""
    features: FeatureConfig
    feature_names: tuple[str, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    """Provenance: the training data, versions, validation summary."""

    def predict_proba(self, X: np.ndarray, threads: int = 0) -> np.ndarray:
        """(N, K) class probabilities of the (N, F) features."""
        if X.shape[1] != len(self.feature_names):
            raise ConfigError(
                f"the model expects {len(self.feature_names)} features but got {X.shape[1]}: the input's "
                "season periods or bands differ from training; use the same features config"
            )
        p = self.booster.predict(X, num_threads=threads)
        return np.asarray(p, dtype=np.float32).reshape(X.shape[0], len(self.classes))

    # --- the folder -----------------------------------------------------------------------

    def save(self, url: str, storage_options: Mapping[str, Any] | None = None,
             extra_files: Mapping[str, bytes] | None = None) -> None:
        """Write ``model.txt`` and ``model.json`` (plus report files) into the folder ``url``."""
        import lightgbm as lgb
        import sklearn

        fs, path = cstore.filesystem(url, storage_options)
        fs.makedirs(path, exist_ok=True)
        meta = {
            "format": MODEL_FORMAT,
            "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "classes": list(self.classes),
            "feature_names": list(self.feature_names),
            "features": self.features.model_dump(mode="json"),
            "versions": {"harvest-cluster": _version(), "lightgbm": lgb.__version__,
                         "scikit-learn": sklearn.__version__, "numpy": np.__version__},
            **{k: v for k, v in self.meta.items() if k not in ("format", "classes", "feature_names", "features")},
        }
        fs.pipe_file(f"{path}/model.txt", self.booster.model_to_string().encode())
        for name, data in (extra_files or {}).items():
            fs.pipe_file(f"{path}/{name}", data)
        # model.json last: a folder without it is not a model (a write cut short is never read)
        fs.pipe_file(f"{path}/model.json", json.dumps(meta, indent=2, default=str).encode())

    @classmethod
    def load(cls, url: str, storage_options: Mapping[str, Any] | None = None) -> "CropModel":
        """Read a model folder; plain text and JSON only, nothing is executed."""
        import lightgbm as lgb

        fs, path = cstore.filesystem(url, storage_options)
        try:
            meta = json.loads(fs.cat_file(f"{path}/model.json"))
            text = fs.cat_file(f"{path}/model.txt").decode()
        except FileNotFoundError:
            raise ConfigError(f"no model at {url!r} (model.json and model.txt expected); run "
                              "'harvest classify train' first, or fix the model path") from None
        fmt = str(meta.get("format", ""))
        name, _, major = fmt.partition("/")
        want_name, _, want_major = MODEL_FORMAT.partition("/")
        if name != want_name or major != want_major:
            raise ConfigError(f"the model at {url!r} has format {fmt!r}, this version reads {MODEL_FORMAT!r}: "
                              "retrain it with this version ('harvest classify train')")
        booster = lgb.Booster(model_str=text)
        return cls(booster, tuple(meta["classes"]), FeatureConfig.model_validate(meta["features"]),
                   tuple(meta["feature_names"]), meta)


def _version() -> str:
    import cluster

    return cluster.__version__
