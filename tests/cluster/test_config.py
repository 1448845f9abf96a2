"""Config validation: one message naming every bad key and the fix (pinned wording)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.config import ENV_SETTINGS, env_overrides, load_config, mask_secrets
from cluster.errors import ConfigError
from cluster.ingest import IngestConfig


@pytest.mark.parametrize(
    ("yaml_text", "messages"),
    [
        ("store: x.zarr\nscenes: [a.tif]\nsensor: sentinel2-l2a\ngrdi: {}\n",
         ["grdi: unknown key; remove it or check its spelling"]),
        ("scenes: [a.tif]\nsensor: sentinel2-l2a\n", ["store: required key is missing; add it"]),
        ("store: x.zarr\nscenes: [a.tif]\nsensor: sentinel3\n", ["unknown sensor 'sentinel3'; known: ['cbers4-awfi'"]),
        ("store: x.zarr\nscenes: [a.tif]\nsensor: sentinel2-l2a\ngrid: {pixel_size: -5, tile_size_px: 8}\n",
         ["grid.pixel_size must be a positive number, got -5.0",
          "grid.tile_size_px must be an integer >= 16, got 8"]),
        ("store: x.zarr\nsensor: sentinel2-l2a\n", ["no inputs: set 'scenes'"]),
        ("store: x.zarr\nscenes: [a.tif]\nbands: {red: {index: 1}}\nmask: {band: scl, clear_values: [4]}\n",
         []),  # valid config; the missing mask band is caught when the band mapping is built
        ("store: x.zarr\nscenes: [a.tif]\nsensor: sentinel2-l2a\nmask: {band: scl}\n",
         ["set exactly one of clear_values, cloud_values, cloud_bits; got none"]),
        ("store: x.zarr\nscenes: [a.tif]\nsensor: sentinel2-l2a\nstorage: {secret: hunter2, bogus: 1}\n",
         ["storage.bogus: unknown key"]),
    ],
    ids=["typo-key", "missing-store", "unknown-sensor", "two-bad-values", "no-inputs", "valid",
         "mask-without-rule", "storage-typo"],
)
def test_config__errors_name_the_key_and_the_fix(tmp_path: Path, yaml_text: str, messages: list[str]) -> None:
    path = tmp_path / "ingest.yaml"
    path.write_text(yaml_text)
    if not messages:
        cfg = load_config(IngestConfig, path)
        with pytest.raises(ConfigError, match=r"mask band 'scl' is not in the band mapping \['red'\]"):
            cfg.band_specs()
        return
    with pytest.raises(ConfigError) as err:
        load_config(IngestConfig, path)
    text = str(err.value)
    assert text.startswith(f"invalid {path} config:")
    for m in messages:
        assert m in text
    assert "hunter2" not in text


def test_config__missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(IngestConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("store: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(IngestConfig, bad)


def test_config__overrides_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("store: x.zarr\nscenes: [a.tif]\nsensor: sentinel2-l2a\n")
    env = env_overrides({"HARVEST_GRID__PIXEL_SIZE": "20", "HARVEST_STORE": "s3://b/c.zarr"})
    cfg = load_config(IngestConfig, path, env)
    assert cfg.grid.pixel_size == 20 and cfg.store == "s3://b/c.zarr"


def test_config__process_settings_in_the_environment_are_not_config_keys(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The cluster manifests set HARVEST_AUTOSCALING=on on the head, where job drivers run:
    a job must still read its config there (it failed with 'autoscaling: unknown key')."""
    import argparse

    from jobs._cli import overrides

    path = tmp_path / "c.yaml"
    path.write_text("store: x.zarr\nscenes: [a.tif]\nsensor: sentinel2-l2a\n")
    for name, value in (("HARVEST_AUTOSCALING", "on"), ("HARVEST_LOG_FORMAT", "json"),
                        ("HARVEST_ACTOR_START_TIMEOUT_S", "60"), ("HARVEST_CACHE_DIR", str(tmp_path))):
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARVEST_GRID__PIXEL_SIZE", "20")
    cfg = load_config(IngestConfig, path, overrides(argparse.Namespace(overrides=[])))
    assert cfg.grid.pixel_size == 20
    monkeypatch.setenv("HARVEST_STORGE", "s3://b/c.zarr")  # a misspelt override still fails
    with pytest.raises(ConfigError, match=r"storge: unknown key"):
        load_config(IngestConfig, path, overrides(argparse.Namespace(overrides=[])))


def test_config__every_process_setting_read_from_the_environment_is_listed() -> None:
    """Each HARVEST_ variable the code reads itself is in ENV_SETTINGS, so that it never
    becomes a config override."""
    import re

    root = Path(__file__).resolve().parents[2]
    read = re.compile(r"""(?:environ\.get|getenv|environ\[|setenv)\(?\s*\\?["'](HARVEST_[A-Z0-9_]+)""")
    found = {m.group(1) for folder in ("cluster", "jobs", "benchmarks", "notebooks", "tests")
             for f in (root / folder).rglob("*") if f.suffix in (".py", ".ipynb")
             for m in read.finditer(f.read_text(encoding="utf-8"))}
    overrides_in_tests = {"HARVEST_GRID__PIXEL_SIZE", "HARVEST_STORGE"}
    assert {"HARVEST_AUTOSCALING", "HARVEST_CACHE_DIR"} <= found
    assert found - overrides_in_tests <= ENV_SETTINGS, sorted(found - overrides_in_tests - ENV_SETTINGS)


def test_config__secrets_never_shown() -> None:
    cfg = IngestConfig(store="s3://b/c.zarr", scenes=["a.tif"], sensor="sentinel2-l2a",
                       storage={"key": "AKIAXXXX", "secret": "s3cr3t", "endpoint_url": "http://127.0.0.1:9"})
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.model_dump())
    assert "storage" not in cfg.public_dict()
    assert cfg.storage.to_fsspec()["secret"] == "s3cr3t"  # in memory, for s3fs only
    assert mask_secrets({"AWS_SECRET_ACCESS_KEY": "x", "nested": [{"token": "y"}]}) == {
        "AWS_SECRET_ACCESS_KEY": "***", "nested": [{"token": "***"}]}
