"""The ``harvest`` entry point: usage, unknown verbs, and errors nobody planned for told in one
paragraph (the traceback only with ``--debug``)."""

from __future__ import annotations

import pytest

from jobs import cli


def test_cli__usage_lists_the_verbs_and_exit_codes(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "run" in out and "ingest -> indices -> classify (predict) -> aggregate -> forecast" in out
    assert "4 unexpected error" in out and "--debug" in out
    assert cli.main(["harvestt"]) == 2


def test_cli__unexpected_error_is_one_paragraph_and_debug_shows_it(monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    import jobs.info

    def broken(argv: list[str]) -> int:  # stands for a bug deep in a job
        return {}["missing"]

    monkeypatch.setattr(jobs.info, "main", broken)
    assert cli.main(["info", "somewhere.zarr"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("harvest info: unexpected error KeyError: 'missing' (in jobs/test_cli.py:")
    assert "Traceback" not in err and "--debug info" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(KeyError):
        cli.main(["--debug", "info", "somewhere.zarr"])
