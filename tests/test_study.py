"""Tests of the concept-quality study runner (``captum_srae.evaluation.study``)
and of ``captum-srae study``; tiny problems and fits, a few seconds in all."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from captum_srae.apps.cli import main
from captum_srae.evaluation.study import (
    PAPER_GRID,
    QUICK_GRID,
    SyntheticProblem,
    TwoPartProblem,
    axis_effect,
    bootstrap_ci,
    common_metrics,
    expand_grid,
    format_summary,
    load_results,
    paired_difference,
    point_levels,
    run_study,
    summarize,
)
from captum_srae.evaluation.study.parts import (
    OWN_POINTING,
    PartsProblem,
    own_part_features,
)
from captum_srae.evaluation.study.synthetic import factor_score

TINY = {
    "hidden_sizes": [16, 8],
    "pretrain_epochs": 1,
    "max_epochs": 3,
    "epoch_samples": None,
    "batch_size": 64,
    "n_concepts": 3,
}
GRID = {"reconstruction": ["log", "mse"]}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def tiny_synthetic(**kw: object) -> SyntheticProblem:
    return SyntheticProblem(**{"n": 400, "d": 32, "n_distractors": 8, **kw})


def lines(path: Path) -> list[dict]:
    return [json.loads(t) for t in path.read_text().splitlines()]


def pairs(records: list[dict]) -> list[tuple[str, int]]:
    return [(r["point"], r["seed"]) for r in records]


# -------------------------------------------------------------------- grid
def test_expand_grid_names_and_overrides() -> None:
    points = expand_grid(PAPER_GRID)
    assert len(points) == 2 * 3 * 5 * 2
    assert len({p.name for p in points}) == len(points)
    assert points[0].name == "reconstruction=log,pull_away=off,alpha_pred=1,retune=off"
    by_name = dict(points)
    assert by_name["reconstruction=log,pull_away=images,alpha_pred=50,retune=on"] == {
        "reconstruction": "log",
        "pull_away_axis": "images",
        "alpha_pred": 50,
        "retune_rounds": 5,
    }
    assert by_name["reconstruction=mse,pull_away=off,alpha_pred=1000,retune=off"][
        "alpha_pt"
    ] == (0.0)
    quick = [p.name for p in expand_grid(QUICK_GRID)]
    assert quick == [
        "reconstruction=log,pull_away=off",
        "reconstruction=log,pull_away=images",
        "reconstruction=mse,pull_away=off",
        "reconstruction=mse,pull_away=images",
    ]
    assert [
        p.name for p in expand_grid({"hidden_sizes": [[16, 8]], "lr": [0.001]})
    ] == ["hidden_sizes=[16,8],lr=0.001"]


@pytest.mark.parametrize(
    ("grid", "words"),
    [
        ({"alpha_pred": [1], "nope": [1, 2]}, ["nope"]),
        ({"axis": {"x": {"alpha_pred": 1, "bogus": 2}}}, ["bogus", "'axis'"]),
        ({}, ["grid"]),
        ({"alpha_pred": []}, ["grid", "alpha_pred", "no values"]),
        ({"named": {}}, ["grid", "named", "no values"]),
        ({"seed": [0, 1]}, ["seed", "seeds"]),
        ({"alpha_pred": [1, 1]}, ["repeats"]),
        ({"a": {"x": {"lr": 0.1}}, "lr": [0.2]}, ["'lr'", "already"]),
        (
            {"alpha_pred": [1, -2]},
            ["grid point alpha_pred=-2: alpha_pred must be a nonnegative"],
        ),
    ],
)
def test_bad_grids(grid: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        expand_grid(grid)
    for word in words:
        assert word in str(info.value)


def test_grid_checked_with_the_base_config() -> None:
    expand_grid({"batch_size": [256]}, {"epoch_samples": None})
    with pytest.raises(ValueError, match="grid point batch_size=8192: epoch_samples"):
        expand_grid({"batch_size": [8192]})


# ------------------------------------------------------------- results file
@pytest.mark.parametrize(
    ("seeds", "match"),
    [
        ([0], "seeds: a confidence interval needs at least 2 seeds"),
        ([], "at least 2 seeds"),
        ([1, 1], "seeds must be distinct"),
        ([0, -1], "seeds must be non-negative"),
        ("01", "seeds must be a sequence"),
    ],
)
def test_bad_seeds(tmp_path: Path, seeds: object, match: str) -> None:
    out = tmp_path / "s.jsonl"
    with pytest.raises(ValueError, match=match):
        run_study(tiny_synthetic(), GRID, seeds, out, base_config=TINY)  # type: ignore[arg-type]
    assert not out.exists()


def test_run_writes_header_and_records_then_resumes(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    problem = tiny_synthetic()
    first = run_study(problem, GRID, [0, 1], out, base_config=TINY, show_progress=False)
    assert pairs(first) == [
        ("reconstruction=log", 0),
        ("reconstruction=log", 1),
        ("reconstruction=mse", 0),
        ("reconstruction=mse", 1),
    ]
    header = lines(out)[0]["study"]
    assert header["problem"] == "synthetic"
    assert header["fingerprint"] == json.loads(json.dumps(problem.fingerprint()))
    assert header["grid"] == GRID and header["format"] == 1
    assert header["base_config"]["hidden_sizes"] == [16, 8]
    rec = first[0]
    assert rec["config"]["seed"] == 0 and rec["config"]["reconstruction"] == "log"
    for key in ("r2", "dead_features", "top_share", "accepted", "mean_abs_cos"):
        assert key in rec["metrics"]
    assert {"factor_match", "distractor_r2", "informative_r2"} <= set(rec["metrics"])
    # Same study again with one more seed: only the 2 new fits run.
    again = run_study(
        problem, GRID, [0, 1, 2], out, base_config=TINY, show_progress=False
    )
    assert again[:4] == load_results(out)[1][:4]
    assert pairs(again)[4:] == [("reconstruction=log", 2), ("reconstruction=mse", 2)]
    assert len(lines(out)) == 1 + 6
    # Nothing left to do: no fit, no new line.
    assert len(run_study(problem, GRID, [2, 0], out, base_config=TINY)) == 6
    assert len(lines(out)) == 7


def test_another_studys_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    run_study(
        tiny_synthetic(), GRID, [0, 1], out, base_config=TINY, show_progress=False
    )
    before = out.read_bytes()
    for kwargs in (
        {"problem": tiny_synthetic(seed=1), "grid": GRID, "base": TINY},
        {"problem": tiny_synthetic(), "grid": QUICK_GRID, "base": TINY},
        {"problem": tiny_synthetic(), "grid": GRID, "base": {**TINY, "lr": 0.01}},
    ):
        with pytest.raises(ValueError, match=r"out \(.*\) was written by another"):
            run_study(
                kwargs["problem"],
                kwargs["grid"],
                [0, 1],
                out,
                base_config=kwargs["base"],
            )
    assert out.read_bytes() == before
    other = tmp_path / "other.txt"
    other.write_text("some notes")
    with pytest.raises(ValueError, match="not a study results file"):
        run_study(tiny_synthetic(), GRID, [0, 1], other, base_config=TINY)
    assert other.read_text() == "some notes"


def test_partial_last_line_is_ignored_then_removed(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    problem = tiny_synthetic()
    run_study(problem, GRID, [0, 1], out, base_config=TINY, show_progress=False)
    raw = out.read_bytes()
    out.write_bytes(raw[:-25])  # the last record, interrupted mid-line
    header, records = load_results(out)
    assert header["study"]["problem"] == "synthetic"
    assert pairs(records) == pairs(lines_of(raw)[1:-1])
    final = run_study(problem, GRID, [0, 1], out, base_config=TINY, show_progress=False)
    assert sorted(pairs(final)) == sorted(pairs(lines_of(raw)[1:]))
    written = lines(out)  # every line parses: nothing glued together
    assert sorted(pairs(written[1:])) == sorted(pairs(final))
    assert len(set(pairs(written[1:]))) == 4
    assert written[-1]["metrics"] == lines_of(raw)[-1]["metrics"] | {
        "fit_seconds": written[-1]["metrics"]["fit_seconds"]
    }


def lines_of(raw: bytes) -> list[dict]:
    return [json.loads(t) for t in raw.decode().splitlines()]


def test_interrupted_header_is_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "s.jsonl"
    out.write_bytes(b'{"study": {"form')
    run_study(
        tiny_synthetic(), GRID, [0, 1], out, base_config=TINY, show_progress=False
    )
    assert len(lines(out)) == 5


# -------------------------------------------------------------- statistics
def reference_ci(values: list[float], n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile bootstrap written out: resample, average, sort, interpolate."""
    idx = np.random.default_rng(seed).integers(
        0, len(values), size=(n_boot, len(values))
    )
    means = sorted(sum(values[i] for i in row) / len(values) for row in idx)

    def percentile(q: float) -> float:
        pos = q * (n_boot - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, n_boot - 1)
        return means[lo] + (pos - lo) * (means[hi] - means[lo])

    return percentile(0.025), percentile(0.975)


def test_bootstrap_ci_against_reference() -> None:
    values = [1.0, 2.0, 4.0, 8.0, 3.5]
    mean, low, high = bootstrap_ci(values, n_boot=500, seed=3)
    assert mean == pytest.approx(3.7)
    assert (low, high) == pytest.approx(reference_ci(values, 500, 3), abs=1e-12)
    assert low < mean < high
    assert bootstrap_ci([2.5, 2.5, 2.5]) == (2.5, 2.5, 2.5)
    one = bootstrap_ci([4.0])
    assert one[0] == 4.0 and math.isnan(one[1]) and math.isnan(one[2])
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([1.0, math.nan])


def test_bootstrap_ci_contains_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (10, 1000):
        x = rng.normal(5.0, 2.0, n)
        mean, low, high = bootstrap_ci(list(x), n_boot=2000, seed=1)
        assert low < mean < high
        widths.append(high - low)
        if n == 1000:  # close to the normal interval 2 * 1.96 * sd / sqrt(n)
            assert high - low == pytest.approx(2 * 1.96 * x.std() / n**0.5, rel=0.1)
    assert widths[1] < widths[0] / 5


def fake(point: str, seed: int, **metrics: float) -> dict:
    return {"point": point, "seed": seed, "metrics": metrics}


def test_paired_difference_known_shift_and_nan() -> None:
    base = [0.3, 0.9, 0.1, 0.5]
    recs = [fake("a", s, m=v) for s, v in enumerate(base)]
    recs += [fake("b", s, m=v + 0.25) for s, v in enumerate(base)]
    recs += [fake("c", s, m=v) for s, v in enumerate(base)]
    diff = paired_difference(recs, "m", "a", "b")
    assert (diff.mean, diff.low, diff.high) == pytest.approx((0.25, 0.25, 0.25))
    assert (diff.n, diff.n_dropped) == (4, 0)
    same = paired_difference(recs, "m", "a", "c")
    assert (same.mean, same.low, same.high) == (0.0, 0.0, 0.0)
    recs.append(fake("c", 1, m=math.nan))  # a later record of seed 1 wins
    assert paired_difference(recs, "m", "a", "c")[-2:] == (3, 1)
    with pytest.raises(ValueError, match="a: unknown grid point 'x'"):
        paired_difference(recs, "m", "x", "b")
    with pytest.raises(ValueError, match="metric"):
        paired_difference(recs, "nope", "a", "b")
    with pytest.raises(ValueError, match="share 1 seed"):
        paired_difference([*recs, fake("d", 0, m=1.0)], "m", "a", "d")


def test_summarize_drops_nan_and_formats_a_table() -> None:
    recs = [fake("p", 0, r2=0.5, k=1.0), fake("p", 1, r2=0.7, k=math.nan)]
    recs += [fake("q", 0, r2=0.9, k=2.0), fake("q", 1, r2=0.9, k=2.0)]
    rows = summarize(recs, n_boot=200)
    assert [(r.point, r.metric, r.n, r.n_dropped) for r in rows] == [
        ("p", "r2", 2, 0),
        ("p", "k", 1, 1),
        ("q", "r2", 2, 0),
        ("q", "k", 2, 0),
    ]
    assert rows[0].mean == pytest.approx(0.6) and 0.5 <= rows[0].low <= rows[0].high
    table = format_summary(rows)
    assert table.splitlines()[0] == "| point | seeds | r2 | k |"
    assert "| p | 2 | 0.6 [" in table and "1 (n=1)" in table
    assert "| q | 2 | 0.9 [0.9, 0.9] | 2 [2, 2] |" in table
    assert [r.metric for r in summarize(recs, ["k"])] == ["k", "k"]
    with pytest.raises(ValueError, match="metrics"):
        summarize(recs, ["zz"])


def test_identical_configs_differ_by_zero(tmp_path: Path) -> None:
    grid = {"copy": {"one": {}, "two": {}}}
    recs = run_study(
        TwoPartProblem(n=300, d=32),
        grid,
        [0, 1],
        tmp_path / "s.jsonl",
        base_config=TINY,
        show_progress=False,
    )
    diff = paired_difference(recs, "r2", "copy=one", "copy=two")
    assert (diff.mean, diff.low, diff.high, diff.n) == (0.0, 0.0, 0.0, 2)


# ---------------------------------------------------------------- problems
def test_synthetic_distractors_are_loud_and_do_not_move_y() -> None:
    problem = SyntheticProblem(n=2000, d=64, n_factors=3, n_distractors=16, seed=2)
    data = problem.load()
    assert data.z_train.shape == (1500, 64) and data.z_test.shape == (500, 64)
    mask = data.truth["distractor"]
    assert int(mask.sum()) == 16
    var = torch.cat([data.z_train, data.z_test]).var(dim=0)
    assert float(var[mask].min()) > 3 * float(var[~mask].max())
    # y is a function of the factors only (the distractors are not in it)
    factors = data.truth["factors"]
    assert factors.shape == (500, 3) and bool((factors >= 0).all())
    torch.testing.assert_close(data.y_test, factor_score(factors))
    yc = data.y_test - data.y_test.mean()
    zc = data.z_test[:, mask] - data.z_test[:, mask].mean(0)
    corr = (zc * yc[:, None]).sum(0) / (zc.norm(dim=0) * yc.norm())
    assert float(corr.abs().max()) < 0.15
    # the data are exactly reproducible, and the seed changes them
    assert (
        problem.fingerprint()
        == SyntheticProblem(
            n=2000, d=64, n_factors=3, n_distractors=16, seed=2
        ).fingerprint()
    )
    assert problem.fingerprint()["data"] != tiny_synthetic().fingerprint()["data"]
    with pytest.raises(ValueError, match="d must be"):
        SyntheticProblem(d=8, n_distractors=8)


class StandIn:
    """An SRAE-like object with chosen x-features on the held-out rows."""

    def __init__(
        self,
        e: Tensor,
        z_hat: Tensor,
        weight: Tensor,
        predict: Callable[[Tensor], Tensor],
    ) -> None:
        self.e, self.z_hat, self.weight, self.predict_fn = e, z_hat, weight, predict

    def encode(self, z: Tensor) -> Tensor:
        return self.e

    def decode(self, e: Tensor) -> Tensor:
        return self.z_hat

    def predict(self, e: Tensor) -> Tensor:
        return self.predict_fn(e)

    def contributions(self, e: Tensor) -> Tensor:
        return e[:, None, :] * self.weight[None]


def test_true_factors_match_perfectly() -> None:
    problem = tiny_synthetic(n=800)
    data = problem.load()
    f = data.truth["factors"]
    order = [2, 0, 3, 1]
    e = torch.cat([3 * f[:, order], torch.zeros(len(f), 1)], dim=1)  # + 1 dead
    w = torch.tensor([[1.0, 2.0, 0.5, 1.0, 0.0]])
    oracle = StandIn(
        e, data.z_test, w, lambda e: factor_score(e[:, [1, 3, 0, 2]] / 3)[:, None]
    )
    scores = problem.score(oracle, data)
    assert scores["factor_match"] == pytest.approx(1.0, abs=1e-5)
    assert scores["distractor_r2"] == pytest.approx(1.0)
    assert scores["informative_r2"] == pytest.approx(1.0)
    common = common_metrics(oracle, data)
    assert common["r2"] == pytest.approx(1.0)
    assert common["dead_features"] == 1 and common["n_positive"] == 4
    pos = (e * w).mean(0)
    assert common["top_share"] == pytest.approx(float(pos.max() / pos.sum()), rel=1e-5)
    assert common["reconstructed_fraction"] == 1.0
    assert math.isnan(common["accepted"]) and math.isnan(common["rounds"])
    # a random encoding matches poorly
    noise = torch.rand(e.shape, generator=torch.Generator().manual_seed(0))
    assert (
        problem.score(StandIn(noise, data.z_test, w, oracle.predict_fn), data)[
            "factor_match"
        ]
        < 0.3
    )
    negative = StandIn(e, data.z_test, -w, oracle.predict_fn)
    assert math.isnan(common_metrics(negative, data)["top_share"])


def test_two_part_scores_a_separating_encoding() -> None:
    problem = TwoPartProblem(n=400, d=32)
    data = problem.load()
    parts = data.truth["parts"]
    e = torch.stack([torch.zeros(len(parts)), parts[:, 1], parts[:, 0]], dim=1)
    w = torch.tensor([[1.0, 3.0, 1.0]])
    oracle = StandIn(e, data.z_test, w, lambda e: (e * w).sum(1, keepdim=True))
    s = problem.score(oracle, data)
    assert s["part_a_corr"] == pytest.approx(1.0) and s["part_b_corr"] == pytest.approx(
        1.0
    )
    assert s["parts_separated"] == 1.0
    a, b = float(parts[:, 0].mean()), 3 * float(parts[:, 1].mean())
    assert s["part_a_share"] == pytest.approx(a / (a + b), rel=1e-5)
    assert s["part_b_share"] == pytest.approx(b / (a + b), rel=1e-5)
    both = torch.stack([parts.sum(1), parts.sum(1), parts[:, 0]], dim=1)
    mixed = problem.score(StandIn(both, data.z_test, w, oracle.predict_fn), data)
    assert mixed["parts_separated"] == 0.0


def test_two_part_generator_moved_unchanged() -> None:
    from helpers import two_part_problem as from_helpers

    z, y, a, b = from_helpers(n=50, d=40, seed=3)
    torch.testing.assert_close(y, z[:, :32].sum(1))
    assert z.shape == (50, 40) and bool(((a == 0) | (a >= 0.5)).all())
    assert float(y.sum()) == pytest.approx(float(from_helpers(50, 40, 3)[1].sum()))


# --------------------------------------------------------------------- CLI
def test_point_levels_follow_expand_grid() -> None:
    grid = {"hidden_sizes": [[16, 8], [4, 2]], "retune": {"off": {"retune_rounds": 1}}}
    levels = point_levels(grid)
    assert list(levels) == [p.name for p in expand_grid(grid)]
    assert levels["hidden_sizes=[16,8],retune=off"] == {
        "hidden_sizes": "[16,8]",
        "retune": "off",
    }


def test_axis_effect_averages_over_the_other_axes_per_seed() -> None:
    """metric = 1 + 0.5 [x=b] + 2 [y=2] + seed-specific offsets; x's effect
    is 0.5 + (the x-by-y interaction on the y=2 points) / 2, by hand (y is
    the axis alpha_pred)."""
    grid = {"x": {"a": {"lr": 1e-3}, "b": {"lr": 2e-3}}, "alpha_pred": [1, 2]}
    recs = []
    for s, offset in enumerate([0.0, 0.3, -0.2, 0.9]):
        for x in ("a", "b"):
            for y in (1, 2):
                inter = 0.2 * s if (x, y) == ("b", 2) else 0.0
                m = 1 + 0.5 * (x == "b") + 2 * (y == 2) + offset + inter
                recs.append(fake(f"x={x},alpha_pred={y}", s, m=m))
    eff = axis_effect(recs, grid, "m", "x", "a", "b", n_boot=500)
    per_seed = [0.5 + 0.1 * s for s in range(4)]
    assert (eff.a, eff.b, eff.n, eff.n_dropped) == ("x=a", "x=b", 4, 0)
    assert eff.mean == pytest.approx(float(np.mean(per_seed)))
    assert per_seed[0] <= eff.low <= eff.mean <= eff.high <= per_seed[-1]
    y_eff = axis_effect(recs, grid, "m", "alpha_pred", "2", "1")
    assert y_eff.mean == pytest.approx(-2 - 0.1 * (0 + 1 + 2 + 3) / 4)
    recs.append(fake("x=b,alpha_pred=1", 3, m=math.nan))  # seed 3 keeps a pair
    eff = axis_effect(recs, grid, "m", "x", "a", "b")
    assert (eff.n, eff.n_dropped) == (4, 1)
    # per combination first: alpha_pred=1 has 0.5 on seeds 0-2, alpha_pred=2
    # 0.5 + 0.2 s on seeds 0-3; the missing pair does not shift seed 3 up
    assert eff.mean == pytest.approx((0.5 + (0.5 + 0.3)) / 2)
    with pytest.raises(ValueError, match="grid: no record is at a point"):
        axis_effect(recs, {"lr": [1, 2]}, "m", "lr", "1", "2")
    for args, match in [
        (("m", "z", "a", "b"), "axis: 'z' is not an axis"),
        (("m", "x", "a", "c"), "b: 'c' is not a level of x"),
        (("m", "x", "a", "a"), "the same level"),
        (("nope", "x", "a", "b"), "metric: no record"),
    ]:
        with pytest.raises(ValueError, match=match):
            axis_effect(recs, grid, *args)
    with pytest.raises(ValueError, match="1 seed"):
        axis_effect(recs[:4], grid, "m", "x", "a", "b")


def test_cli_runs_quick_grid_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study.jsonl"
    args = [
        "study", "--problem", "two-part", "--problem-args", '{"n": 300, "d": 32}',
        "--grid", "quick", "--seeds", "0", "1", "--out", str(out),
        "--base-config", json.dumps(TINY), "--no-progress", "--n-boot", "200",
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| point | seeds | r2 | dead_features |" in printed
    assert "| reconstruction=mse,pull_away=images | 2 | " in printed
    assert len(lines(out)) == 1 + 4 * 2
    summary = [
        "study", "--out", str(out), "--summary-only", "--metrics", "r2",
        "parts_separated", "--compare", "reconstruction=log,pull_away=off",
        "reconstruction=mse,pull_away=off", "--metric", "r2",
    ]  # fmt: skip
    assert main(summary) == 0
    printed = capsys.readouterr().out
    assert "| point | seeds | r2 | parts_separated |" in printed
    assert "r2: reconstruction=mse,pull_away=off - reconstruction=log" in printed
    effect = [*summary[:7], "--effect", "pull_away", "off", "images", "--metric", "r2"]
    assert main(effect) == 0
    printed = capsys.readouterr().out
    assert "r2: pull_away=images - pull_away=off = " in printed
    assert "over 2 paired seeds" in printed
    bad = [*summary[:7], "--effect", "pull_away", "off", "zz", "--metric", "r2"]
    assert main(bad) == 2
    assert "--effect: b: 'zz' is not a level of pull_away" in capsys.readouterr().err
    bad = [*summary[:7], "--effect", "pull_away", "off", "images", "--metric", "zz"]
    assert main(bad) == 2
    assert "error: --metric: no record has 'zz'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--problem", "synthetic", "--seeds", "0"], "--seeds: a confidence interval"),
        (["--problem", "synthetic", "--grid", "nope"], "--grid: 'nope' is not"),
        (["--problem", "synthetic", "--grid", '{"zz": [1]}'], "--grid axis 'zz'"),
        (
            ["--problem", "synthetic", "--base-config", '{"lr": -1}'],
            "--base-config: lr",
        ),
        (["--problem", "synthetic", "--problem-args", '{"zz": 1}'], "--problem-args"),
        (["--summary-only"], "--out: no results file"),
        (["--summary-only", "--compare", "a", "b"], "--metric is required"),
        ([], "--problem is required"),
    ],
)
def test_cli_errors_name_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["study", "--out", str(tmp_path / "s.jsonl"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("captum-srae: error: ") and message in err
    assert err.count("\n") == 1


def test_own_part_features_needs_pointing_share_and_distinct_features() -> None:
    nan = math.nan
    # x-feature 0 points at part 2 (wing) and 3 (tail); 1 only at the tail
    pointing = torch.tensor(
        [[nan, 0.1, 0.9, 0.8], [nan, 0.2, 0.1, 0.75], [nan, 0.9, 0.0, 0.0]]
    )
    shares = torch.tensor([0.5, 0.3, 0.2])
    assert own_part_features(pointing, shares, (2, 3)) == [0, 1]
    # the tail feature carries too small a share: the tail has none of its own
    assert own_part_features(pointing, torch.tensor([0.9, 0.1, 0.0]), (2, 3)) == [
        0,
        None,
    ]
    # below the pointing bar
    low = pointing.clone()
    low[1, 3] = OWN_POINTING - 0.01
    assert own_part_features(low, shares, (2, 3)) == [0, None]
    assert own_part_features(pointing, shares, ()) == []


def test_parts_problem_scores_a_fit_on_a_tiny_cnn() -> None:
    problem = PartsProblem(
        target=3,
        n_fit=96,
        n_test=40,
        n_maps=12,
        cnn={"n_train": 96, "epochs": 1, "width": 4, "size": 32},
    )
    data = problem.load()
    assert data.z_train.shape == (96, 16) and data.y_test.shape == (40,)
    assert data.truth["masks"].shape == (12, 4, 32, 32)
    assert problem.load() is data  # loaded once
    from captum_srae import fit_srae
    from captum_srae.core.config import SRAEConfig

    srae, _ = fit_srae(
        data.z_train, data.y_train, SRAEConfig(**TINY), show_progress=False
    )
    s = problem.score(srae, data)
    assert set(s) >= {"class_agreement", "pointing_wing", "pointing_tail", "parts_own"}
    assert 0.0 <= s["class_agreement"] <= 1.0 and s["parts_own"] in (0.0, 1.0)
    # the agreement by its definition: replace the class's score by the XNN's
    logits = data.truth["logits"].clone()
    with torch.no_grad():
        logits[:, 3] = srae.predict(srae.encode(data.z_test))[:, 0]
    ref = float((logits.argmax(1) == data.truth["logits"].argmax(1)).double().mean())
    assert s["class_agreement"] == pytest.approx(ref)
    # a pointing tolerance only adds hits, and enters the fingerprint
    assert "pointing_tolerance" not in problem.fingerprint()
    problem.pointing_tolerance = 3
    near = problem.score(srae, data)
    for key in ("pointing_wing", "pointing_tail", "class_pointing"):
        assert near[key] >= s[key]
    assert near["class_pointing"] > s["class_pointing"] or s["class_pointing"] == 1
    assert problem.fingerprint()["pointing_tolerance"] == 3
    with pytest.raises(ValueError, match="pointing_tolerance"):
        PartsProblem(pointing_tolerance=-1)
    with pytest.raises(ValueError, match="target"):
        PartsProblem(target=4)
    with pytest.raises(ValueError, match="target"):
        PartsProblem(target=-1)
    assert PartsProblem(target=0).target == 0  # "plain": no evidence part
    with pytest.raises(ValueError, match="n_maps"):
        PartsProblem(n_maps=1)


def test_plot_tradeoff_puts_each_point_at_its_means() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from captum_srae.evaluation.study import plot_tradeoff

    records = [
        {"point": p, "seed": s, "metrics": {"r2": r2, "top_share": share}}
        for p, s, r2, share in [
            ("a", 0, 0.9, 0.5),
            ("a", 1, 0.8, 0.7),
            ("b", 0, 0.99, 0.3),
            ("b", 1, 0.97, 0.3),
        ]
    ]
    ax = plot_tradeoff(records, "r2", "top_share", labels={"a": "A"})
    centres = sorted(
        (round(float(c.lines[0].get_xdata()[0]), 6), float(c.lines[0].get_ydata()[0]))
        for c in ax.containers
    )
    assert centres == [(0.85, pytest.approx(0.6)), (0.98, pytest.approx(0.3))]
    assert {t.get_text() for t in ax.texts} == {"A", "b"}
    assert ax.get_xlabel() == "r2" and ax.get_ylabel() == "top_share"
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="metrics"):
        plot_tradeoff(records, "r2", "nope")
    assert plt.get_fignums() == []  # the failed call opened no figure


def test_parallel_study_equals_the_one_thread_sequential_study(
    tmp_path: Path,
) -> None:
    """n_jobs=2 fits two (point, seed) pairs at a time in one-thread workers:
    the records (in the same order) equal a sequential one-thread run but for
    the fit times."""
    problem = tiny_synthetic()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = [
            run_study(
                problem,
                GRID,
                [0, 1, 2],
                tmp_path / f"{n}.jsonl",
                base_config=TINY,
                show_progress=False,
                n_jobs=n,
            )  # fmt: skip
            for n in (1, 2)
        ]
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*runs, strict=True):
        for rec in (a, b):
            rec["metrics"].pop("fit_seconds", None)
        assert a == b
    assert len(runs[0]) == 6
    with pytest.raises(ValueError, match="n_jobs"):
        run_study(problem, GRID, [0, 1], tmp_path / "x.jsonl", n_jobs=0)
