"""Property-based tests (hypothesis) of the public API on random, often bad, input.

Every call must either return a finite result of the documented shape or raise
``ValueError``/``TypeError`` whose message names the offending argument. The
number of generated cases is counted in ``CASES`` and printed at the end.
"""

from __future__ import annotations

import collections
import json
import math
import re
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captum_srae import SRAE, SRAEConfig, fit_srae
from captum_srae.activations import collect_activations, pool_activations
from captum_srae.apps.cli import main
from captum_srae.attribution import SRAEAttribution
from captum_srae.core.serialization import load_srae, save_srae

CASES: collections.Counter[str] = collections.Counter()
OUTCOMES: collections.Counter[str] = collections.Counter()
SETTINGS = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
#: Valid input only: every call must succeed and return the right value, so a
#: regression that rejects everything fails these tests.
VALID = settings(SETTINGS, max_examples=25)
FLOATS = st.sampled_from([torch.float32, torch.float64])
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


@VALID
@given(
    n=st.integers(8, 40),
    d=st.integers(2, 6),
    k=st.sampled_from([None, 1, 2]),
    dtype=FLOATS,
    seed=st.integers(0, 3),
    data=st.data(),
)
def test_fit_srae_fits_every_valid_input(n, d, k, dtype, seed, data):
    """At least 8 rows (a held-out split), 1 <= n_concepts < d, finite floats."""
    CASES["fit_srae valid"] += 1
    n_concepts = data.draw(st.integers(1, d - 1), label="n_concepts")
    g = torch.Generator().manual_seed(seed)
    z = (3 * torch.randn(n, d, generator=g)).to(dtype)
    shape = (n,) if k is None else (n, k)
    y = torch.randn(shape, generator=g).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        srae, history = fit_srae(
            z, y, TINY.replace(n_concepts=n_concepts, seed=seed), show_progress=False
        )
    n_out = 1 if k is None else k
    assert (srae.in_features, srae.n_outputs, srae.n_concepts) == (d, n_out, n_concepts)
    assert not srae.training
    assert (
        history.n_train + history.n_val == n
        and min(history.n_train, history.n_val) >= 1
    )
    zf = z.to(srae.z_mean.dtype)
    # the standardisation statistics are those of (a subset of) the rows
    assert (srae.z_mean >= zf.min(0).values - 1e-4).all()
    assert (srae.z_mean <= zf.max(0).values + 1e-4).all()
    assert (srae.z_scale > 0).all()
    e = srae.encode(zf)
    assert e.shape == (n, n_concepts) and torch.isfinite(e).all() and (e >= 0).all()
    pred = srae.predict(e)
    assert pred.shape == (n, n_out) and torch.isfinite(pred).all()
    torch.testing.assert_close(srae.contributions(e).sum(-1) + srae.bias, pred)


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


@VALID
@given(
    n=st.integers(0, 6),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 99),
)
def test_srae_verbs_on_valid_input(srae, n, scale, seed):
    """float32 ``(N, 6)`` activations: the verbs agree with each other, with
    the effective weights and row by row."""
    CASES["SRAE verbs valid"] += 1
    z = scale * torch.randn(n, 6, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        e = srae.encode(z)
        assert e.shape == (n, 2) and torch.isfinite(e).all() and (e >= 0).all()
        out = srae(z)
        torch.testing.assert_close(out.x_features, e)
        rec = srae.decode(e)
        assert rec.shape == (n, 6) and torch.isfinite(rec).all()
        torch.testing.assert_close(out.reconstruction, rec)
        pred = srae.predict(e)
        torch.testing.assert_close(out.prediction, pred)
        torch.testing.assert_close(pred, e @ srae.weight.T + srae.bias)
        c = srae.contributions(e)
        assert c.shape == (n, 1, 2)
        torch.testing.assert_close(c.sum(-1) + srae.bias, pred)
        for i in range(n):  # no example depends on another (float32 GEMMs of
            # one row and of a batch round differently: a few ulps)
            torch.testing.assert_close(
                srae.encode(z[i : i + 1]), e[i : i + 1], rtol=2e-5, atol=1e-5
            )


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


@VALID
@given(
    shape=st.tuples(st.integers(0, 3), st.integers(1, 4)).flatmap(
        lambda nc: st.lists(st.integers(1, 4), max_size=3).map(lambda t: (*nc, *t))
    ),
    dtype=FLOATS,
    pooling=st.sampled_from(["avg", "flatten"]),
    seed=st.integers(0, 99),
)
def test_pool_activations_values(shape, dtype, pooling, seed):
    """Floating activations of rank >= 2: the channel means or all values."""
    CASES["pool_activations valid"] += 1
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(shape, generator=g).to(dtype)
    out = pool_activations(a, pooling)
    n, c, rest = shape[0], shape[1], math.prod(shape[2:])
    if a.dim() == 2:
        assert out is a
    elif pooling == "avg":
        torch.testing.assert_close(out, a.reshape(n, c, rest).sum(-1) / rest)
    else:
        torch.testing.assert_close(out, a.reshape(n, c * rest))


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
def test_collect_activations(tiny_cnn, n, special, target, batch_size):
    # Inputs the model itself accepts (float32, 4-D, 2 channels): an error the
    # user's model raises on inputs it cannot take is the model's own and
    # propagates unchanged (tests/test_activations.py).
    CASES["collect_activations"] += 1
    net = tiny_cnn(2, (6,))
    x = torch.rand(n, 2, 5, 5)
    if special is not None and n:
        x[0, 0, 0, 0] = special
    try:
        z, y = collect_activations(net, "relu1", x, target, batch_size=batch_size)
    except (ValueError, TypeError) as exc:
        assert _names(exc, "target", "data", "batch_size", "batch", "layer"), exc
        return
    assert z.shape == (n, 6) and y.shape[0] == n
    OUTCOMES["collect ok"] += 1
    assert torch.isfinite(z).all() and torch.isfinite(y).all()


@VALID
@given(
    n=st.integers(1, 5),
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    target=st.one_of(
        st.none(),
        st.integers(0, 2),
        st.lists(st.integers(0, 2), min_size=1, max_size=3, unique=True),
    ),
    batch_size=st.integers(1, 6),
    seed=st.integers(0, 99),
)
def test_collect_activations_values(tiny_cnn, n, size, target, batch_size, seed):
    """Finite float32 images, a valid target and batch size: the pooled
    ``relu1`` output and the target columns of the model's scores."""
    CASES["collect_activations valid"] += 1
    net = tiny_cnn(2, (6,))
    x = torch.randn(n, 2, *size, generator=torch.Generator().manual_seed(seed))
    z, y = collect_activations(net, "relu1", x, target, batch_size=batch_size)
    columns = (
        [0, 1, 2] if target is None else [target] if isinstance(target, int) else target
    )
    with torch.no_grad():
        torch.testing.assert_close(z, torch.relu(net.conv1(x)).mean((2, 3)))
        torch.testing.assert_close(y, net(x)[:, columns])


# ------------------------------------------------------------ attribution
@pytest.fixture(scope="module")
def explainer(tiny_cnn) -> SRAEAttribution:
    net = tiny_cnn(2, (6,))
    x = torch.rand(60, 2, 5, 5, generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return SRAEAttribution(net, "relu1", config=TINY).fit(
            x, target=[0, 1], show_progress=False
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
    explainer, no_hooks, n, shape_tail, dtype, special, target, output
):
    CASES["attribute/contributions"] += 1
    x = torch.rand(n, *shape_tail)
    if special is not None and x.numel():
        x.view(-1)[0] = special
    x = x.to(dtype) if dtype != torch.bool else x > 0.5
    names = ("inputs", "target", "output")
    # the model's own error on inputs it cannot take propagates unchanged
    accepted = x.dtype == torch.float32 and x.dim() == 4 and x.shape[1] == 2
    try:
        c = explainer.contributions(x, target)
    except (ValueError, TypeError) as exc:
        assert _names(exc, *names), exc
    except RuntimeError:
        assert not accepted
    else:
        assert c.shape == (n, 2)
        assert torch.isfinite(c).all()
        OUTCOMES["contributions ok"] += 1
    try:
        maps = explainer.attribute(x, target, output=output)
    except (ValueError, TypeError) as exc:
        assert _names(exc, *names), exc
    except RuntimeError:
        assert not accepted
    else:
        assert maps.shape == (n, 2 if output == "concepts" else 1, *x.shape[2:])
        assert torch.isfinite(maps).all()
        OUTCOMES["attribute ok"] += 1
    assert no_hooks(explainer.forward_func)


def _gradcam_oracle(srae: SRAE, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM of each x-feature of one example from its layer output
    ``a`` (C, H, W), by autograd: ``relu(Σ_c mean_hw(∂e_k/∂a_c) a_c)``, and
    the x-features ``e``. The maps are input-sized (padding 1)."""
    z = a.mean((1, 2))[None].requires_grad_(True)
    e = srae.encode(z)[0]
    grads = [
        torch.autograd.grad(e[k], z, retain_graph=True)[0][0] for k in range(len(e))
    ]
    alpha = torch.stack(grads) / (a.shape[1] * a.shape[2])  # (K, C)
    return torch.relu(torch.einsum("kc,chw->khw", alpha, a)), e.detach()


@VALID
@given(
    n=st.integers(1, 3),
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    seed=st.integers(0, 99),
    data=st.data(),
)
def test_attribute_and_contributions_values(explainer, no_hooks, n, size, seed, data):
    """Finite float32 images of any size and a fitted target (one for all or
    one per example): x-features, contributions and maps equal an autograd
    oracle, and the class map is the contribution-weighted sum of the maps."""
    CASES["attribute/contributions valid"] += 1
    target = data.draw(
        st.sampled_from([0, 1])
        | st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n),
        label="target",
    )
    targets = [target] * n if isinstance(target, int) else target
    net = explainer.forward_func
    x = torch.rand(n, 2, *size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a = torch.relu(net.conv1(x))  # the explained layer, input-sized
    maps_ref, e_ref, c_ref = [], [], []
    for i, t in enumerate(targets):
        srae = explainer.sraes_[t]
        m, e = _gradcam_oracle(srae, a[i])
        maps_ref.append(m)
        e_ref.append(e)
        c_ref.append(e * srae.weight[0].detach())
    e = explainer.concepts(x, target)
    c = explainer.contributions(x, target)
    torch.testing.assert_close(e, torch.stack(e_ref))
    torch.testing.assert_close(c, torch.stack(c_ref))
    maps = explainer.attribute(x, target)
    assert maps.shape == (n, 2, *size)
    torch.testing.assert_close(maps, torch.stack(maps_ref), rtol=1e-4, atol=1e-6)
    cls = explainer.attribute(x, target, output="class")
    torch.testing.assert_close(
        cls, (c[:, :, None, None] * maps).sum(1, keepdim=True), rtol=1e-4, atol=1e-6
    )
    assert no_hooks(net)


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


@VALID
@given(metadata=st.dictionaries(st.text(max_size=6), JSON, max_size=4))
def test_save_load_round_trips_valid_metadata(srae, tmp_path_factory, metadata):
    """Every JSON dictionary is saved with the model and read back unchanged."""
    CASES["save/load valid"] += 1
    path = tmp_path_factory.mktemp("save") / "m"
    save_srae(srae, path, metadata)
    back = load_srae(path)
    doc = json.loads((path / "config.json").read_text())
    assert doc["metadata"] == metadata
    assert back.state_dict().keys() == srae.state_dict().keys()
    for key, value in srae.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
    z = torch.rand(3, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(back.encode(z), srae.encode(z))


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


@settings(VALID, max_examples=40)
@given(
    size=st.sampled_from([[], ["--quick"], ["--tiny"]]),
    seed=st.one_of(st.none(), st.integers(0, 10**6)),
    progress=st.booleans(),
    out=st.from_regex(r"[a-z0-9_][a-z0-9_.-]{0,7}", fullmatch=True),
)
def test_cli_runs_valid_demo_arguments(monkeypatch, capsys, size, seed, progress, out):
    """Valid ``demo`` arguments reach ``run_demo`` parsed, and exit with 0."""
    CASES["cli valid"] += 1
    calls = []
    monkeypatch.setattr(
        "captum_srae.apps.demo.run_demo", lambda **kw: calls.append(kw) or {}
    )
    monkeypatch.setattr("captum_srae.apps.cli.format_summary", lambda summary: "done")
    argv = ["demo", *size, "--out", out]
    argv += [] if seed is None else ["--seed", str(seed)]
    argv += [] if progress else ["--no-progress"]
    assert main(argv) == 0, argv
    assert capsys.readouterr().out == "done\n"
    assert len(calls) == 1
    kw = calls[0]
    assert kw["seed"] == (seed or 0) and kw["out"] == out
    assert kw["quick"] == (size == ["--quick"]) and kw["show_progress"] == progress
    assert kw["mode"] == ("tiny" if size == ["--tiny"] else None)


@pytest.mark.parametrize("command", [[], ["demo"], ["fit"], ["explain"], ["compare"]])
def test_cli_help_succeeds(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: captum-srae")


def test_zz_report_case_count(capsys):
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nhypothesis cases tried: {total} {dict(CASES)} {dict(OUTCOMES)}")
    assert total > 0
