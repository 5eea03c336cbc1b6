"""Tests of the command line (``captum_srae.apps.cli`` and ``python -m captum_srae``).

The demo itself is replaced by a stub here; ``tests/test_demo.py`` runs it once
and checks ``main(["demo", ...])`` on its real result.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import captum_srae
from captum_srae.apps.cli import build_parser, format_summary, main

REPO = Path(__file__).resolve().parents[1]


def fake_summary() -> dict[str, Any]:
    """A summary shaped like the one of ``run_demo`` (2 classes, 3 x-features)."""

    def entry(target: int, r2: float, effects: dict[str, list[float]]) -> dict:
        return {
            "target": target,
            "r2": r2,
            "rmse": 0.123,
            "rmse_rel": 0.0123,
            "score_std": 2.5,
            "baseline_r2": 0.91234,
            "baseline_rmse": 0.456,
            "bias": -1.0,
            "share": [0.2, 0.5, 0.3],
            "mean": [0.1, 1.0, -1.2],
            "part_effect": effects,
            "part_mass": {"wing": [0.1, 0.2, None], "tail": [0.3, 0.1, 0.0]},
        }

    return {
        "mode": "quick",
        "seed": 3,
        "data": {
            "description": "6 fit / 10 held-out images",
            "n_fit": 6,
            "n_test": 10,
            "part_names": ["wing", "tail"],
            "class_names": ["plain", "winged"],
        },
        "cnn": {
            "name": "PartsCNN",
            "parameters": 62900,
            "cached": True,
            "train_accuracy": 0.75,
            "test_accuracy": 0.625,
        },
        "explainer": {
            "layer": "conv4",
            "in_features": 64,
            "n_concepts": 3,
            "hidden_sizes": [200, 50],
            "accepted": {"plain": True, "winged": False},
            "fit_val_r2": {"plain": 0.99, "winged": 0.98},
        },
        "classes": {
            "plain": entry(
                0, 0.98765, {"wing": [0.5, -2.0, 0.1], "tail": [1.0, 0.0, -0.3]}
            ),
            "winged": entry(1, 0.97, {}),
        },
        "agreement": 0.9876,
        "baseline": "PCA (3 components) + linear regression",
        "timings": {
            "data": 0.1,
            "cnn": 5.0,
            "fit": 1.5,
            "evaluation": 0.3,
            "total": 6.9,
        },
        "out": None,
    }


@pytest.fixture
def stub_demo(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace ``run_demo`` by a stub; returns the list of its calls."""
    calls: list[dict[str, Any]] = []

    def run_demo(**kwargs: Any) -> dict[str, Any]:
        calls.append(kwargs)
        summary = fake_summary()
        summary["mode"] = "quick" if kwargs["quick"] else "full"
        summary["seed"] = kwargs["seed"]
        summary["out"] = kwargs["out"]
        return summary

    monkeypatch.setattr("captum_srae.apps.demo.run_demo", run_demo)
    return calls


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"captum-srae {captum_srae.__version__}\n"


@pytest.mark.parametrize(
    "argv",
    [
        ["bogus"],
        [],
        ["demo", "--seed", "-1"],
        ["demo", "--seed", "x"],
        ["demo", "--unknown"],
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_demo_arguments(
    stub_demo: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo"]) == 0
    argv = ["demo", "--quick", "--seed", "3", "--out", "x", "--no-progress"]
    assert main([*argv, "--cache-dir", "c"]) == 0
    assert stub_demo == [
        {
            "quick": False,
            "seed": 0,
            "out": "captum-srae-demo",
            "show_progress": True,
            "cache_dir": None,
            "mode": None,
        },
        {
            "quick": True,
            "seed": 3,
            "out": "x",
            "show_progress": False,
            "cache_dir": "c",
            "mode": None,
        },
    ]
    assert main(["demo", "--tiny", "--out", "y"]) == 0
    assert stub_demo[-1]["mode"] == "tiny"
    with pytest.raises(SystemExit):  # --quick and --tiny exclude each other
        main(["demo", "--quick", "--tiny"])
    text = capsys.readouterr().out
    assert "Report      captum-srae-demo\n" in text
    assert "Report      x\n" in text


def test_demo_table(
    stub_demo: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--quick", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("captum-srae demo (quick mode, seed 0)\n")
    assert "loaded from the cache" in text
    assert "held-out accuracy 62.5 %" in text
    lines = text.splitlines()
    plain = next(line for line in lines if line.startswith("  plain "))
    # columns: R^2, PCA R^2, RMSE, RMSE/range, then the x-features by share
    # with the part whose presence moves their contribution most
    assert plain.split() == [
        "plain", "0.9877", "0.9123", "0.123", "1.2", "%",
        "x2", "50%", "wing-,", "x3", "30%", "tail-,", "x1", "20%", "tail+",
    ]  # fmt: skip
    winged = next(line for line in lines if line.startswith("  winged "))
    assert winged.endswith("x2 50% n/a, x3 30% n/a, x1 20% n/a")
    assert "equals the CNN's prediction on 98.8 % of the" in text
    assert "Timings     data 0.1 s, cnn 5.0 s, fit 1.5 s, evaluation 0.3 s" in text
    assert text.isascii()


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValueError("bad value"), 2),
        (TypeError("bad type"), 2),
        (FileNotFoundError("no such file"), 2),
        (PermissionError("denied"), 1),
    ],
)
def test_library_errors_are_messages(
    error: Exception,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def run_demo(**kwargs: Any) -> dict[str, Any]:
        raise error

    monkeypatch.setattr("captum_srae.apps.demo.run_demo", run_demo)
    assert main(["demo", "--quick"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"captum-srae: error: {error}\n"


def test_out_that_is_a_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real ``run_demo`` refuses it before doing any work."""
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["demo", "--quick", "--no-progress", "--out", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("captum-srae: error: ") and "not a directory" in err
    assert target.read_text() == "x"


def test_help_lists_demo(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out
    assert build_parser().prog == "captum-srae"


def _python_m(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    return subprocess.run(
        [sys.executable, "-m", "captum_srae", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_python_m_version() -> None:
    result = _python_m("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"captum-srae {captum_srae.__version__}"


def test_python_m_usage_error() -> None:
    result = _python_m("bogus")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr and "Traceback" not in result.stderr


def test_format_summary_without_report() -> None:
    summary = copy.deepcopy(fake_summary())
    text = format_summary(summary)
    assert "Report" not in text
    summary["out"] = "r/index.html"
    summary["timings"]["report"] = 2.0
    text = format_summary(summary)
    assert "Report      r/index.html\n" in text
    assert text.endswith("--images images/3_winged+tailed/*.png --out explained")
    assert "report 2.0 s; total 6.9 s" in text
