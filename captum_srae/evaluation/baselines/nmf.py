#!/usr/bin/env python3
r"""Nonnegative matrix factorisation baseline.

scikit-learn's ``NMF`` factorises the (nonnegative, post-ReLU) activations
``Z ~ E H`` with ``E, H >= 0``; the ``n`` rows of ``H`` are the concepts. The
x-features of an activation vector are its nonnegative least-squares (NNLS)
code, ``e(z) = argmin_{e >= 0} ||z - H^T e||^2`` -- what ``NMF.transform``
computes (with no regularisation) -- here computed in torch so that it is
differentiable in ``z`` and works under ``torch.func.vmap``/``jacrev``.
"""

from __future__ import annotations

from typing import Any

import torch
from sklearn.decomposition import NMF
from torch import Tensor, nn

from captum_srae.evaluation.baselines.base import (
    ConceptBaseline,
    check_fit_data,
    check_seed,
)
from captum_srae.utils.validation import check_int

__all__ = ["NMFBaseline", "NonnegativeLeastSquares", "fit_nmf"]


class NonnegativeLeastSquares(nn.Module):
    r"""``e(z) = argmin_{e >= 0} ||z - H^T e||^2`` for each row of ``z``.

    With ``G = H H^T`` and ``b = H z``, the problem is ``min_{e>=0} e^T G e / 2
    - b^T e``. The active set is found without gradients by ``n_iter`` steps of
    accelerated projected gradient (FISTA, step ``1 / lambda_max(G)``); the
    output is then the least-squares solution on that set, ``e_S =
    (G_SS + r I)^{-1} b_S`` (zero elsewhere) with a tiny ridge ``r = 1e-6
    lambda_max(G)`` against singular sets, computed with gradients. The NNLS
    solution is piecewise linear in ``z`` and this is its derivative wherever
    the active set is locally constant. There is no data-dependent control
    flow, so ``vmap`` and ``jacrev`` apply.

    Args:
        components (Tensor): ``H``, shape ``(n, D)``, nonnegative rows.
        n_iter (int, optional): projected-gradient steps. Default: 300
    """

    def __init__(self, components: Tensor, n_iter: int = 300) -> None:
        super().__init__()
        self.n_iter = int(n_iter)
        h = components.double()
        gram = h @ h.T
        lip = float(torch.linalg.eigvalsh(gram)[-1])
        self.register_buffer("components", components.float().clone())
        self.register_buffer("gram", gram.float())
        self.step = 1.0 / max(lip, 1e-12)
        # a ridge of 1e-6 lambda_max keeps the active-set solve nonsingular
        # (e.g. two equal components) and changes e by about 1e-6 relative
        self.ridge = 1e-6 * lip

    def forward(self, z: Tensor) -> Tensor:
        """NNLS codes ``(N, n)`` of the rows of ``z`` ``(N, D)``."""
        gram = self.gram
        b = z @ self.components.T
        with torch.no_grad():
            bd = b.detach()
            e = torch.zeros_like(bd)
            y, t = e, 1.0
            for _ in range(self.n_iter):
                e_new = (y - self.step * (y @ gram - bd)).clamp_min(0)
                t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
                y = e_new + ((t - 1) / t_new) * (e_new - e)
                e, t = e_new, t_new
            m = (e > 0).to(b.dtype)
        system = m[..., :, None] * gram * m[..., None, :] + torch.diag_embed(
            1 - m + self.ridge * m
        )
        e = torch.linalg.solve(system, (m * b)[..., None])[..., 0]
        return e.clamp_min(0)


class NMFBaseline(ConceptBaseline):
    r"""x-features = NNLS codes on the NMF components; ``decode(e) = e H``.

    No centring or scaling: ``z_mean = 0``, ``z_scale = 1``. The encoder is a
    :class:`NonnegativeLeastSquares` module, which Excitation Backprop does not
    support (use ``method="gradcam"`` or a Captum class).

    Args:
        components (Tensor): ``H``, shape ``(n_concepts, D)``.
        n_outputs (int): number of explained outputs.
        pooling (str, optional): pooling of the activations. Default: "avg"
        n_iter (int, optional): see :class:`NonnegativeLeastSquares`.
            Default: 300
    """

    def __init__(
        self,
        components: Tensor,
        n_outputs: int,
        pooling: str = "avg",
        n_iter: int = 300,
    ) -> None:
        n, d = components.shape
        super().__init__(d, n, n_outputs, pooling)
        self.encoder = nn.Sequential(NonnegativeLeastSquares(components, n_iter))

    @property
    def components(self) -> Tensor:
        """The NMF components ``H``, shape ``(n_concepts, D)``."""
        return self.encoder[0].components

    def _decode(self, e: Tensor) -> Tensor:
        return e @ self.components


def fit_nmf(
    z: Any,
    y: Any,
    n_concepts: int = 5,
    *,
    seed: int = 0,
    pooling: str = "avg",
    max_iter: int = 1000,
    n_iter: int = 300,
) -> NMFBaseline:
    r"""NMF baseline: ``NMF(n_concepts, init="nndsvda", solver="cd",
    beta_loss="frobenius")`` on ``z`` (scikit-learn, no regularisation) and a
    least-squares head on the NNLS x-features.

    NMF needs nonnegative data: negative activations raise ``ValueError``
    (no shift is applied, since a shift would change what a zero activation
    means; pool a post-ReLU layer, or shift ``z`` yourself and explain the
    shifted layer consistently).

    Args:
        z (Tensor or ndarray): nonnegative activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        n_concepts (int, optional): number of components. Default: 5
        seed (int, optional): ``random_state`` of scikit-learn's NMF.
            Default: 0
        pooling (str, optional): pooling of the activations. Default: "avg"
        max_iter (int, optional): iterations of the factorisation.
            Default: 1000
        n_iter (int, optional): projected-gradient steps of the NNLS encoder.
            Default: 300

    Returns:
        *NMFBaseline*: the fitted baseline (eval mode, CPU, float32).

    Raises:
        ValueError: if ``z`` has negative values, or on bad arguments.
    """
    z64, y64, k = check_fit_data(z, y, n_concepts, pooling)
    check_seed(seed)
    check_int(max_iter, "max_iter")
    check_int(n_iter, "n_iter")
    low = float(z64.min())
    if low < 0:
        raise ValueError(
            f"z must be nonnegative for the NMF baseline, got a minimum of {low:.3g}; "
            "use post-ReLU activations (or shift z yourself)"
        )
    nmf = NMF(
        n_components=k,
        init="nndsvda",
        solver="cd",
        beta_loss="frobenius",
        max_iter=max_iter,
        random_state=seed,
    )
    nmf.fit(z64.numpy())
    model = NMFBaseline(
        torch.from_numpy(nmf.components_).float(), y64.shape[1], pooling, n_iter
    )
    return model.fit_head(z64.float(), y64)
