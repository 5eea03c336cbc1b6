#!/usr/bin/env python3
r"""overcomplete's sparse autoencoders and NMF dictionaries as concept
baselines (overcomplete is the ``peers`` extra).

overcomplete (Fel et al., Kempner Institute) learns concept dictionaries on
activations. :func:`fit_overcomplete` fits one of its models on the same
pooled activations ``z`` ``(N, D)`` as the project's baselines and wraps it
as a :class:`~captum_srae.evaluation.baselines.ConceptBaseline`: encode =
the peer's codes (differentiable in ``z``), decode = its dictionary,
``predict`` = a least-squares head on the codes. So
``SRAEAttribution.from_sraes(model, layer, {t: baseline})`` draws its
spatial concept maps exactly like the project's baselines, and
:class:`OvercompleteConcepts` plugs it into
:func:`~captum_srae.evaluation.compare.compare` (``extra_methods``).

Kinds (:data:`OVERCOMPLETE_KINDS`):

- ``"topk"``, ``"batchtopk"``, ``"jump"``: ``TopKSAE``, ``BatchTopKSAE``,
  ``JumpSAE`` (linear encoder, l2-normalised dictionary without bias),
  trained with overcomplete's ``train_sae`` on ``z / s`` (``s``: the
  per-dimension standard deviation; no centring, since the dictionary has
  no bias and the codes are nonnegative);
- ``"nmf"``, ``"semi_nmf"``, ``"convex_nmf"``: ``NMF``, ``SemiNMF``,
  ``ConvexNMF`` fitted on the raw ``z``; the codes of new activations are
  their nonnegative least-squares codes on the peer's dictionary
  (:class:`~captum_srae.evaluation.baselines.NonnegativeLeastSquares`, the
  problem the peer's own iterative ``encode`` solves), which is
  differentiable in ``z``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from captum_srae.evaluation.baselines import ConceptBaseline, NMFBaseline
from captum_srae.evaluation.baselines.base import check_fit_data, check_seed
from captum_srae.evaluation.peers.requirements import import_peer
from captum_srae.utils.validation import check_int

__all__ = [
    "OVERCOMPLETE_KINDS",
    "OvercompleteConcepts",
    "OvercompleteDictionary",
    "OvercompleteSAE",
    "SAECodes",
    "fit_overcomplete",
    "import_overcomplete",
]

_SAES = {"topk": "TopKSAE", "batchtopk": "BatchTopKSAE", "jump": "JumpSAE"}
_FACTORIZERS = {"nmf": "NMF", "semi_nmf": "SemiNMF", "convex_nmf": "ConvexNMF"}

#: The model kinds of :func:`fit_overcomplete`.
OVERCOMPLETE_KINDS: tuple[str, ...] = (*_SAES, *_FACTORIZERS)


@contextlib.contextmanager
def _get_cmap_shim() -> Iterator[None]:
    """Give ``matplotlib.cm`` a ``get_cmap`` only while overcomplete imports.

    overcomplete 0.3.0 builds colormaps at import time with
    ``plt.cm.get_cmap`` (``overcomplete/visualization/cmaps.py``), which
    matplotlib 3.9 removed; the import then fails with AttributeError. The
    stand-in delegates to ``matplotlib.colormaps`` and is removed again on
    exit, so nothing else in the process sees it (only overcomplete's
    visualisation helpers, which the adapter does not use, may call it later).
    """
    import matplotlib.cm

    if hasattr(matplotlib.cm, "get_cmap"):
        yield
        return

    def get_cmap(name: Any = None, lut: int | None = None) -> Any:
        import matplotlib

        cmap = matplotlib.colormaps[name or "viridis"]
        return cmap if lut is None else cmap.resampled(lut)

    matplotlib.cm.get_cmap = get_cmap  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del matplotlib.cm.get_cmap  # type: ignore[attr-defined]


def import_overcomplete() -> ModuleType:
    r"""Import overcomplete (version-checked by
    :func:`~captum_srae.evaluation.peers.import_peer`).

    With matplotlib >= 3.9 the import is run under a scoped
    ``matplotlib.cm.get_cmap`` stand-in (see the module source): the
    attribute exists only during the import.

    Returns:
        *ModuleType*: the ``overcomplete`` package.

    Raises:
        ValueError: if overcomplete is missing, unsupported or fails to
            import.
    """
    with _get_cmap_shim():
        try:
            return import_peer("overcomplete", "overcomplete")
        except AttributeError as exc:  # another import-time incompatibility
            raise ValueError(
                f"peer 'overcomplete': importing it failed ({exc}); install a "
                "supported version with pip install 'captum-srae[peers]'"
            ) from exc


class SAECodes(nn.Module):
    r"""``forward(zs) = sae.encode(zs)[1]``: an overcomplete SAE's codes.

    For ``kind="jump"`` the JumpReLU is recomputed with plain tensor
    operations (``relu(pre) · [relu(pre) ≥ exp(θ)]``): the same values and
    the same gradient with respect to the input as overcomplete's
    ``autograd.Function``, which has no ``setup_context`` and so cannot run
    under the ``torch.func`` transforms of the closed-form maps.

    Args:
        sae (nn.Module): an overcomplete ``SAE`` (its ``encode`` returns
            ``(pre_codes, codes)``).
        kind (str, optional): the SAE's kind. Default: "topk"
    """

    def __init__(self, sae: nn.Module, kind: str = "topk") -> None:
        super().__init__()
        self.sae, self.kind = sae, kind

    def forward(self, zs: Tensor) -> Tensor:
        """Codes ``(N, n_concepts)`` of standardised activations ``(N, D)``."""
        if self.kind == "jump":
            codes = torch.relu(self.sae.encoder(zs)[0])
            return codes * (codes >= torch.exp(self.sae.thresholds)).to(codes.dtype)
        return self.sae.encode(zs)[1]


class OvercompleteSAE(ConceptBaseline):
    r"""An overcomplete sparse autoencoder with a least-squares score head.

    ``encode(z) = codes(z / s)`` (``z_mean = 0``, ``z_scale = s``);
    ``decode(e) = (e @ dictionary) · s``. Build it with
    :func:`fit_overcomplete`.

    Args:
        sae (nn.Module): the trained overcomplete SAE (eval mode).
        kind (str): ``"topk"``, ``"batchtopk"`` or ``"jump"``.
        n_outputs (int): number of explained outputs.
        pooling (str, optional): pooling of the activations. Default: "avg"
    """

    def __init__(
        self, sae: nn.Module, kind: str, n_outputs: int, pooling: str = "avg"
    ) -> None:
        d, k = sae.dictionary.in_dimensions, sae.nb_concepts
        super().__init__(d, k, n_outputs, pooling)
        self.kind = kind
        self.encoder = SAECodes(sae, kind)

    @property
    def sae(self) -> nn.Module:
        """The overcomplete SAE."""
        return self.encoder.sae

    @property
    def dictionary(self) -> Tensor:
        """The atoms ``(n_concepts, D)`` in standardised units (unit norm)."""
        return self.sae.get_dictionary()

    def _decode(self, e: Tensor) -> Tensor:
        return self.sae.decode(e) * self.z_scale + self.z_mean


class OvercompleteDictionary(NMFBaseline):
    r"""An overcomplete NMF-family dictionary: nonnegative least-squares
    codes on its atoms, ``decode(e) = e @ atoms`` (raw units).

    Args:
        factorizer (nn.Module): the fitted overcomplete ``NMF``, ``SemiNMF``
            or ``ConvexNMF``.
        kind (str): ``"nmf"``, ``"semi_nmf"`` or ``"convex_nmf"``.
        n_outputs (int): number of explained outputs.
        pooling (str, optional): pooling of the activations. Default: "avg"
        n_iter (int, optional): projected-gradient steps of the NNLS encoder.
            Default: 300
    """

    def __init__(
        self,
        factorizer: nn.Module,
        kind: str,
        n_outputs: int,
        pooling: str = "avg",
        n_iter: int = 300,
    ) -> None:
        atoms = factorizer.get_dictionary().detach().float().cpu()
        super().__init__(atoms, n_outputs, pooling, n_iter)
        self.kind = kind
        self.factorizer = factorizer


def _check_kind(kind: Any) -> str:
    if not isinstance(kind, str) or kind not in OVERCOMPLETE_KINDS:
        raise ValueError(f"kind must be one of {OVERCOMPLETE_KINDS}, got {kind!r}")
    return kind


def _positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _train_sae(
    oc: ModuleType,
    kind: str,
    zs: Tensor,
    k: int,
    seed: int,
    active: int,
    epochs: int,
    batch_size: int,
    lr: float,
    l1_penalty: float,
) -> nn.Module:
    """Build and train an overcomplete SAE on ``zs`` (deterministic)."""
    n, d = zs.shape
    gen = torch.Generator().manual_seed(seed)
    # atoms start at k distinct training rows, the encoder at their transpose
    # (overcomplete's ``untied(copy_from_dictionary=True)``): no atom starts
    # dead, as with the random default on nonnegative data
    rows = zs[torch.randperm(n, generator=gen)[:k]]
    params = {"dictionary_params": {"initializer": rows.clone()}}
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # overcomplete copies the initializer with torch.tensor(...)
        warnings.filterwarnings("ignore", "To copy construct", UserWarning)
        torch.manual_seed(seed)
        if kind == "topk":
            sae = oc.sae.TopKSAE(d, k, top_k=active, **params)
        elif kind == "batchtopk":
            # BatchTopK keeps the top_k largest codes of the whole batch
            sae = oc.sae.BatchTopKSAE(d, k, top_k=active * min(batch_size, n), **params)
        else:
            sae = oc.sae.JumpSAE(d, k, **params)
        sae.untied(bias=True, copy_from_dictionary=True)
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(zs),
            batch_size=batch_size,
            shuffle=True,
            generator=gen,
            drop_last=kind == "batchtopk" and n > batch_size,
        )

        def criterion(x: Tensor, x_hat: Tensor, pre: Tensor, codes: Tensor, dic: Any):
            if kind == "jump":
                return oc.sae.mse_l1(x, x_hat, pre, codes, dic, penalty=l1_penalty)
            # MSE + the peer's auxiliary loss (default weight) on unchosen codes
            return oc.sae.losses.top_k_auxiliary_loss(x, x_hat, pre, codes, dic)

        opt = torch.optim.Adam(sae.parameters(), lr=lr)
        oc.sae.train_sae(
            sae, loader, criterion, opt, nb_epochs=epochs, monitoring=0, device="cpu"
        )
    return sae.eval().requires_grad_(False)


def _fit_factorizer(
    oc: ModuleType, kind: str, z: Tensor, k: int, seed: int, max_iter: int
) -> nn.Module:
    """Fit an overcomplete NMF-family model on ``z`` (deterministic)."""
    if kind == "nmf" and float(z.min()) < 0:
        raise ValueError(
            f"z must be nonnegative for kind='nmf', got a minimum of "
            f"{float(z.min()):.3g}; use 'semi_nmf' or post-ReLU activations"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        factorizer = getattr(oc.optimization, _FACTORIZERS[kind])(k)
        factorizer.fit(z, max_iter=max_iter)
    return factorizer


def _check_options(
    k: int,
    seed: Any,
    active: Any,
    epochs: Any,
    batch_size: Any,
    lr: Any,
    l1_penalty: Any,
) -> tuple[float, float]:
    """Check the SAE options of :func:`fit_overcomplete`; ``(lr, l1)``."""
    check_seed(seed)
    for value, name in ((epochs, "epochs"), (batch_size, "batch_size")):
        check_int(value, name)
    if check_int(active, "active") > k:
        raise ValueError(f"active must be an int in [1, n_concepts={k}], got {active}")
    l1 = float(l1_penalty)
    if isinstance(l1_penalty, bool) or l1 < 0:
        raise ValueError(f"l1_penalty must be a number >= 0, got {l1_penalty!r}")
    return _positive(lr, "lr"), l1


def fit_overcomplete(
    kind: str,
    z: Any,
    y: Any,
    n_concepts: int = 5,
    *,
    seed: int = 0,
    pooling: str = "avg",
    active: int = 2,
    epochs: int = 50,
    batch_size: int = 256,
    lr: float = 1e-2,
    l1_penalty: float = 1e-4,
    max_iter: int = 500,
    n_iter: int = 300,
) -> ConceptBaseline:
    r"""Fit an overcomplete model on activations ``z`` and a least-squares
    score head on ``y``.

    - SAEs (``"topk"``, ``"batchtopk"``, ``"jump"``): ``n_concepts`` atoms,
      overcomplete's default linear encoder, ``train_sae`` with Adam
      (``lr``) on mini-batches of ``z / s`` for ``epochs`` epochs, loss =
      mean squared reconstruction error (+ ``l1_penalty`` · mean ``|codes|`` for
      ``"jump"``). ``active`` codes per sample are kept: ``top_k = active``
      for TopK, ``top_k = active · batch_size`` over each batch for
      BatchTopK; JumpReLU learns its thresholds.
    - Dictionaries (``"nmf"``, ``"semi_nmf"``, ``"convex_nmf"``): the peer's
      ``fit(z, max_iter)`` with its default solver.

    Args:
        kind (str): one of :data:`OVERCOMPLETE_KINDS`.
        z (Tensor or ndarray): activations ``(N, D)``, nonnegative for NMF.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        n_concepts (int, optional): dictionary size. Default: 5
        seed (int, optional): seed of initialisation and shuffling. Default: 0
        pooling (str, optional): pooling of the activations. Default: "avg"
        active (int, optional): codes kept per sample (TopK). Default: 2
        epochs (int, optional): SAE training epochs. Default: 50
        batch_size (int, optional): SAE mini-batch size. Default: 256
        lr (float, optional): Adam learning rate. Default: 1e-2
        l1_penalty (float, optional): JumpSAE sparsity weight. Default: 1e-4
        max_iter (int, optional): NMF-family iterations. Default: 500
        n_iter (int, optional): NNLS encoder steps (NMF family). Default: 300

    Returns:
        *ConceptBaseline*: an :class:`OvercompleteSAE` or
        :class:`OvercompleteDictionary` (eval mode, CPU, float32; fitted
        with ``seed`` and the global random state unchanged).

    Raises:
        ValueError: on an unknown ``kind`` (listing the kinds), bad data or
            options (negative ``z`` for NMF), or without overcomplete.

    Examples::

        >>> model = fit_overcomplete("topk", z, y, n_concepts=5, active=2)
        >>> maps = SRAEAttribution.from_sraes(net, "layer4", {3: model}).attribute(x)
    """
    kind = _check_kind(kind)
    z64, y64, k = check_fit_data(z, y, n_concepts, pooling)
    lr, l1 = _check_options(k, seed, active, epochs, batch_size, lr, l1_penalty)
    check_int(max_iter, "max_iter")
    check_int(n_iter, "n_iter")
    oc = import_overcomplete()
    zf, yf = z64.float(), y64.float()
    if kind in _FACTORIZERS:
        fac = _fit_factorizer(oc, kind, zf, k, seed, max_iter)
        model: ConceptBaseline = OvercompleteDictionary(
            fac, kind, y64.shape[1], pooling, n_iter
        )
    else:
        std = z64.std(0) if z64.shape[0] > 1 else torch.ones(z64.shape[1])
        scale = torch.where(std > 1e-12, std, torch.ones_like(std)).float()
        sae = _train_sae(
            oc, kind, zf / scale, k, seed, active, epochs, batch_size, lr, l1
        )
        model = OvercompleteSAE(sae, kind, y64.shape[1], pooling)
        with torch.no_grad():
            model.z_scale.copy_(scale)
    return model.fit_head(zf, yf)


class OvercompleteConcepts:
    r"""An overcomplete model as a concept method of
    :func:`~captum_srae.evaluation.compare.compare` (its ``ConceptMethod``
    protocol: ``fit(z, y, seed)`` returns a fitted model with ``encode``,
    ``decode`` and ``predict``).

    Args:
        kind (str): one of :data:`OVERCOMPLETE_KINDS`.
        n_concepts (int, optional): dictionary size. Default: 5
        **options: options of :func:`fit_overcomplete` (``active``,
            ``epochs``, ``lr``, ...; not ``seed``).

    Raises:
        ValueError: on an unknown ``kind``.
        TypeError: on an option :func:`fit_overcomplete` does not have.

    Examples::

        >>> res = compare(cnn, "conv4", x_fit, x_test,
        ...     extra_methods={"overcomplete TopK": OvercompleteConcepts("topk")})
    """

    def __init__(self, kind: str, n_concepts: int = 5, **options: Any) -> None:
        self.kind = _check_kind(kind)
        self.n_concepts = check_int(n_concepts, "n_concepts")
        allowed = {
            "pooling", "active", "epochs", "batch_size", "lr", "l1_penalty",
            "max_iter", "n_iter",
        }  # fmt: skip
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise TypeError(
                f"options {unknown} are not options of fit_overcomplete; valid "
                f"options: {sorted(allowed)}"
            )
        self.options = options

    def fit(self, z: Tensor, y: Tensor, seed: int) -> ConceptBaseline:
        """Fit on pooled activations ``z`` ``(N, D)`` and scores ``y``."""
        return fit_overcomplete(
            self.kind, z, y, self.n_concepts, seed=seed, **self.options
        )

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return (
            f"OvercompleteConcepts({self.kind!r}, n_concepts={self.n_concepts}{opts})"
        )
