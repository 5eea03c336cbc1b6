"""Tests of the command line (``captum_srae.cli`` and ``python -m captum_srae``).

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
from captum_srae.cli import build_parser, format_summary, main

REPO = Path(__file__).resolve().parents[1]


def fake_summary() -> dict[str, Any]:
    """A summary shaped like the one of ``run_demo`` (3 x-features)."""
    groups = {
        "none": {"n": 2, "mean": [0.1, -0.0001, -3.0], "xnn_score": -3.9},
        "disc": {"n": 3, "mean": [1.5, 0.2, -1.0], "xnn_score": -0.3},
        "bar": {"n": 1, "mean": [0.1, 1.8, -1.0], "xnn_score": -0.1},
        "disc+bar": {"n": 4, "mean": [1.6, 1.9, 0.0], "xnn_score": 2.5},
    }
    for g in groups.values():
        g["model_score"] = g["xnn_score"] + 0.01
    return {
        "mode": "quick",
        "seed": 3,
        "data": {
            "description": "6 train / 10 test images",
            "n_train": 6,
            "n_test": 10,
            "image_size": [3, 32, 32],
            "part_names": ["disc", "bar"],
            "class_names": ["none", "bar only", "disc only", "disc + bar"],
        },
        "cnn": {
            "name": "SmallCNN",
            "parameters": 25796,
            "epochs": 2,
            "train_accuracy": 0.75,
            "test_accuracy": 0.625,
        },
        "explainer": {
            "layer": "conv3",
            "in_features": 64,
            "target": 3,
            "target_name": "disc + bar",
            "n_concepts": 3,
            "hidden_sizes": [200, 50],
            "accepted": True,
            "rounds": 1,
            "chosen_round": 0,
            "fit_val_r2": 0.99,
        },
        "faithfulness": {
            "r2": 0.98765,
            "rmse": 0.123,
            "score_std": 2.5,
            "baseline": "PCA (3 components) + linear regression",
            "baseline_r2": 0.91234,
            "baseline_rmse": 0.456,
        },
        "contributions": {
            "bias": -1.0,
            "mean": [0.9, 1.0, -1.2],
            "mean_abs": [0.9, 1.0, 1.2],
            "share": [0.29, 0.32, 0.39],
            "part_effect": {"disc": [1.4, 0.1, 1.5], "bar": [0.1, 1.7, 1.5]},
            "by_parts": groups,
        },
        "timings": {
            "data": 0.1,
            "cnn": 5.0,
            "activations": 0.2,
            "srae_fit": 1.5,
            "evaluation": 0.3,
            "total": 7.1,
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

    monkeypatch.setattr("captum_srae.demo.run_demo", run_demo)
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
    assert main(["demo", "--quick", "--seed", "3", "--out", "x", "--no-progress"]) == 0
    assert stub_demo == [
        {"quick": False, "seed": 0, "out": None, "show_progress": True},
        {"quick": True, "seed": 3, "out": "x", "show_progress": False},
    ]
    text = capsys.readouterr().out
    assert "Saved to    nothing" in text
    assert "Saved to    x (" in text


def test_demo_table(
    stub_demo: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--quick", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("captum-srae demo (quick mode, seed 0)\n")
    assert "test accuracy 62.5 %" in text
    assert "  SRAE, 3 x-features                      0.9877  0.123" in text
    assert "  PCA (3 components) + linear regression  0.9123  0.456" in text
    lines = text.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("x-feature"))
    assert header.split() == [
        "x-feature", "share", "mean", "+disc", "+bar", "|",
        "none", "disc", "bar", "disc+bar",
    ]  # fmt: skip
    x1 = next(line for line in lines if line.startswith("  x1 "))
    assert x1.split() == [
        "x1", "29.0", "%", "+0.90", "+1.40", "+0.10", "|",
        "+0.10", "+1.50", "+0.10", "+1.60",
    ]  # fmt: skip
    x2 = next(line for line in lines if line.startswith("  x2 "))
    assert "-0.00" not in x2 and "+0.00" in x2
    images = next(line for line in lines if line.startswith("  images"))
    assert images.split() == ["images", "|", "2", "3", "1", "4"]
    assert "accepted in round 1" in text
    assert text.isascii()


def test_format_summary_not_accepted() -> None:
    summary = copy.deepcopy(fake_summary())
    summary["explainer"].update(accepted=False, rounds=5, chosen_round=4)
    assert "not accepted after 5 rounds" in format_summary(summary)


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

    monkeypatch.setattr("captum_srae.demo.run_demo", run_demo)
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
