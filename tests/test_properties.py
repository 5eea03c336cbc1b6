"""Property-based tests (hypothesis) of the public API on random, often bad, input.

Every call must either return a finite result of the documented shape or raise
``ValueError``/``TypeError`` whose message names the offending argument. The
number of generated cases is counted in ``CASES`` and printed at the end.
"""

from __future__ import annotations

import collections
import json
import re
import warnings
from collections import OrderedDict

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from captum_srae import SRAE, SRAEConfig, fit_srae
from captum_srae.activations import collect_activations, pool_activations
from captum_srae.apps.cli import main
from captum_srae.attribution import SRAEAttribution
from captum_srae.core.serialization import load_srae, save_srae

CASES: collections.Counter[str] = collections.Counter()
OUTCOMES: collections.Counter[str] = collections.Counter()
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
TINY = SRAEConfig(
    n_concepts=2,
    hidden_sizes=(8, 4),
    pretrain_epochs=1,
    max_epochs=2,
    patience=1,
    retune_rounds=1,
    batch_size=16,
)
DTYPES = [torch.float16, torch.float32, torch.float64, torch.int64, torch.bool]
SPECIAL = [0.0, 1.0, -1.0, 1e30, -1e30, float("nan"), float("inf")]


def _names(exc: Exception, *names: str) -> bool:
    OUTCOMES["rejected"] += 1
    text = str(exc)
    return any(re.search(rf"\b{re.escape(n)}\b", text) for n in names)


def _tensor(draw, shape, dtype, special):
    x = torch.rand(
        tuple(shape), generator=torch.Generator().manual_seed(draw(st.integers(0, 99)))
    )
    if special is not None and x.numel():
        x.view(-1)[0] = special
    if dtype == torch.bool:
        return x > 0.5
    return x.to(dtype)


@st.composite
def tensors(draw, min_rank=1, max_rank=4, max_side=5):
    rank = draw(st.integers(min_rank, max_rank))
    shape = draw(st.lists(st.integers(0, max_side), min_size=rank, max_size=rank))
    dtype = draw(st.sampled_from(DTYPES))
    special = draw(st.one_of(st.none(), st.sampled_from(SPECIAL)))
    return _tensor(draw, shape, dtype, special)


def _finite_input(x: torch.Tensor) -> bool:
    return bool(torch.isfinite(x.double()).all()) and bool(
        (x.double().abs() < 1e20).all()
    )


# ------------------------------------------------------------------ fitting
@SETTINGS
@given(
    n=st.integers(0, 40),
    d=st.integers(1, 6),
    k=st.sampled_from([None, 1, 2]),
    dtype=st.sampled_from(DTYPES),
    special=st.one_of(st.none(), st.sampled_from(SPECIAL)),
    n_concepts=st.integers(1, 4),
    seed=st.integers(0, 3),
)
def test_fit_srae_returns_finite_model_or_names_argument(
    n, d, k, dtype, special, n_concepts, seed
):
    CASES["fit_srae"] += 1
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, d, generator=g)
    if special is not None and n:
        z[0, 0] = special
    z = z.to(dtype) if dtype != torch.bool else z > 0.5
    y = torch.rand(n, generator=g) if k is None else torch.rand(n, k, generator=g)
    cfg = TINY.replace(n_concepts=n_concepts, seed=seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            srae, history = fit_srae(z, y, cfg, show_progress=False)
    except (ValueError, TypeError) as exc:
        assert _names(exc, "z", "y", "n_concepts"), exc
        return
    assert bool(torch.isfinite(z.double()).all())
    zf = z.float()
    e = srae.encode(zf)
    assert e.shape == (n, n_concepts)
    assert torch.isfinite(e).all()
    assert srae(zf).prediction.shape == (n, 1 if k is None else k)
    assert torch.isfinite(srae(zf).prediction).all()
    assert all(torch.isfinite(t).all() for t in srae.state_dict().values())
    OUTCOMES["fit_srae ok"] += 1


# ------------------------------------------------------------ SRAE methods
@pytest.fixture(scope="module")
def srae() -> SRAE:
    z = torch.rand(60, 6, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fit_srae(z, z[:, :3].sum(1), TINY, show_progress=False)[0]


@SETTINGS
@given(x=tensors(max_rank=3, max_side=7))
def test_srae_encode_predict(srae, x):
    CASES["SRAE.encode/predict"] += 1
    for method, dim, out_dim in (
        (srae.encode, 6, 2),
        (srae.predict, 2, 1),
        (srae.decode, 2, 6),
    ):
        try:
            out = method(x)
        except (ValueError, TypeError) as exc:
            assert _names(exc, "z", "e"), exc
            continue
        assert x.dim() == 2 and x.shape[1] == dim
        assert out.shape == (x.shape[0], out_dim)
        # An nn.Module propagates NaN/Inf row-wise; finite rows stay finite.
        rows = torch.isfinite(x.double()).all(1) & (x.double().abs() < 1e20).all(1)
        assert torch.isfinite(out[rows]).all()


# ----------------------------------------------------------- activations
@SETTINGS
@given(
    a=tensors(min_rank=0, max_rank=5),
    pooling=st.sampled_from(["avg", "flatten", "max", ""]),
)
def test_pool_activations(a, pooling):
    CASES["pool_activations"] += 1
    try:
        out = pool_activations(a, pooling)
    except (ValueError, TypeError) as exc:
        assert _names(exc, "activations", "pooling", "a"), exc
        return
    assert out.dim() == 2 and out.shape[0] == a.shape[0]
    if pooling == "avg":
        assert out.shape[1] == a.shape[1]
    else:
        assert out.shape[1] == (a[0].numel() if a.shape[0] else out.shape[1])


def tiny_cnn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(2, 6, 3, padding=1),
            relu=nn.ReLU(),
            gap=nn.AdaptiveAvgPool2d(1),
            flat=nn.Flatten(),
            fc=nn.Linear(6, 3),
        )
    ).eval()


# Biased towards valid values so that the success path is exercised too.
MOSTLY_F32 = st.sampled_from([torch.float32] * 5 + DTYPES)
MOSTLY_FINITE = st.sampled_from([None] * 6 + SPECIAL)
TARGETS = st.one_of(
    st.sampled_from([0, 1, [0, 1], [1]]),
    st.none(),
    st.integers(-4, 5),
    st.lists(st.integers(-1, 3), min_size=0, max_size=4),
    st.sampled_from(["a", 1.5, True]),
)


@SETTINGS
@given(
    n=st.integers(0, 4),
    special=MOSTLY_FINITE,
    target=TARGETS,
    batch_size=st.sampled_from([1, 2, 3, 64, 0, -1]),
)
def test_collect_activations(n, special, target, batch_size):
    # Inputs the model itself accepts (float32, 4-D, 2 channels): an error the
    # user's model raises on inputs it cannot take is the model's own and
    # propagates unchanged (tests/test_activations.py).
    CASES["collect_activations"] += 1
    net = tiny_cnn()
    x = torch.rand(n, 2, 5, 5)
    if special is not None and n:
        x[0, 0, 0, 0] = special
    try:
        z, y = collect_activations(net, "relu", x, target, batch_size=batch_size)
    except (ValueError, TypeError) as exc:
        assert _names(exc, "target", "data", "batch_size", "batch", "layer"), exc
        return
    assert z.shape == (n, 6) and y.shape[0] == n
    OUTCOMES["collect ok"] += 1
    assert torch.isfinite(z).all() and torch.isfinite(y).all()


# ------------------------------------------------------------ attribution
@pytest.fixture(scope="module")
def explainer() -> SRAEAttribution:
    net = tiny_cnn()
    x = torch.rand(60, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return SRAEAttribution(net, "relu", config=TINY).fit(
            x, target=[0, 1], show_progress=False
        )


def _no_hooks(model: nn.Module) -> bool:
    return all(
        not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
        for m in model.modules()
    )


@SETTINGS
@given(
    n=st.integers(0, 3),
    shape_tail=st.sampled_from([(2, 5, 5)] * 3 + [(2, 4, 6), (3, 5, 5), (2, 5), ()]),
    dtype=MOSTLY_F32,
    special=MOSTLY_FINITE,
    target=TARGETS,
    output=st.sampled_from(["concepts", "class", "bad"]),
)
def test_attribute_and_contributions(
    explainer, n, shape_tail, dtype, special, target, output
):
    CASES["attribute/contributions"] += 1
    x = torch.rand(n, *shape_tail)
    if special is not None and x.numel():
        x.view(-1)[0] = special
    x = x.to(dtype) if dtype != torch.bool else x > 0.5
    names = ("inputs", "target", "output")
    try:
        c = explainer.contributions(x, target)
    except (ValueError, TypeError) as exc:
        assert _names(exc, *names), exc
    else:
        assert c.shape == (n, 2)
        assert torch.isfinite(c).all()
        OUTCOMES["contributions ok"] += 1
    try:
        maps = explainer.attribute(x, target, output=output)
    except (ValueError, TypeError) as exc:
        assert _names(exc, *names), exc
    else:
        assert maps.shape == (n, 2 if output == "concepts" else 1, *x.shape[2:])
        assert torch.isfinite(maps).all()
        OUTCOMES["attribute ok"] += 1
    assert _no_hooks(explainer.forward_func)


# ----------------------------------------------------------- save / load
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 10) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@SETTINGS
@given(
    metadata=st.one_of(
        st.dictionaries(st.text(max_size=6), JSON, max_size=4),
        st.just({"x": object()}),
        st.just(["not", "a", "dict"]),
        st.just({"x": float("nan")}),
    )
)
def test_save_load_with_random_metadata(srae, tmp_path_factory, metadata):
    CASES["save/load"] += 1
    path = tmp_path_factory.mktemp("save") / "m"
    try:
        save_srae(srae, path, metadata)
    except (ValueError, TypeError) as exc:
        assert _names(exc, "metadata"), exc
        assert not path.exists()
        return
    back = load_srae(path)
    doc = json.loads((path / "config.json").read_text())
    assert doc["metadata"] == json.loads(json.dumps(metadata))
    for key, value in srae.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)


# ------------------------------------------------------------------- CLI
BAD_ARGS = st.one_of(
    st.lists(
        st.sampled_from(
            ["demo", "--seed", "-1", "x", "--bogus", "--quick", "1e3", "fit"]
        ),
        min_size=0,
        max_size=4,
    ).filter(
        lambda a: (
            a[:1] != ["demo"]
            or "--seed" in a
            or "--bogus" in a
            or "fit" in a
            or "-1" in a
            or "x" in a
            or "1e3" in a
        )
    ),
)


@settings(SETTINGS, max_examples=100)
@given(argv=BAD_ARGS)
def test_cli_rejects_bad_arguments_with_status_2(argv, capsys):
    CASES["cli"] += 1
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    assert status == 2, argv
    assert "error" in capsys.readouterr().err or not argv


def test_zz_report_case_count(capsys):
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nhypothesis cases tried: {total} {dict(CASES)} {dict(OUTCOMES)}")
    assert total > 0
