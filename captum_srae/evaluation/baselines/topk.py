#!/usr/bin/env python3
r"""TopK sparse autoencoder baseline (Gao et al., *Scaling and evaluating
sparse autoencoders*, 2024, https://arxiv.org/abs/2406.04093).

A dictionary of ``n`` atoms (``n = n_concepts``, the same budget as the SRAE):
``e = TopK_m(ReLU(W_enc zs + b_enc))`` keeps the ``m`` largest of the ``n``
pre-activations of each sample (``m = active``, default 2) and zeroes the
rest; ``zs~ = W_dec e + b_dec``. It is trained on the MSE reconstruction of
the standardised activations only (no score term), then a least-squares head
rebuilds the score from ``e``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from captum_srae.evaluation.baselines.base import (
    ConceptBaseline,
    check_fit_data,
    check_seed,
)
from captum_srae.utils.validation import check_int

__all__ = ["TopK", "TopKSAE", "fit_topk_sae"]


class TopK(nn.Module):
    r"""Keep the ``m`` largest entries of each row (then ReLU), zero the rest.

    Exactly at most ``m`` nonzero entries per row, also with ties (the kept
    indices come from ``torch.topk``). The gradient flows to the kept entries.

    Args:
        m (int): entries kept per row.
    """

    def __init__(self, m: int) -> None:
        super().__init__()
        self.m = int(m)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, n) -> (N, n)`` with at most ``m`` nonzero entries per row."""
        vals, idx = x.topk(self.m, dim=-1)
        return torch.zeros_like(x).scatter(-1, idx, vals.clamp_min(0))

    def extra_repr(self) -> str:  # noqa: D102
        return f"m={self.m}"


class TopKSAE(ConceptBaseline):
    r"""TopK sparse autoencoder with a linear score head.

    Activations are standardised per dimension (mean and standard deviation of
    the training data, as the default SRAE does); :meth:`decode` returns raw
    activations. Gao et al. subtract a pre-encoder bias ``b_pre`` (tied to the
    decoder bias); here it is folded into the encoder bias, which is the same
    function class.

    Args:
        in_features (int): activation dimension ``D``.
        n_concepts (int): dictionary size ``n``.
        active (int): atoms kept per sample ``m`` (``1 <= m <= n``).
        n_outputs (int): number of explained outputs.
        pooling (str, optional): pooling of the activations. Default: "avg"
    """

    def __init__(
        self,
        in_features: int,
        n_concepts: int,
        active: int,
        n_outputs: int,
        pooling: str = "avg",
    ) -> None:
        super().__init__(in_features, n_concepts, n_outputs, pooling)
        self.active = int(active)
        self.encoder = nn.Sequential(nn.Linear(in_features, n_concepts), TopK(active))
        self.decoder = nn.Linear(n_concepts, in_features)

    def _decode(self, e: Tensor) -> Tensor:
        return self.decoder(e) * self.z_scale + self.z_mean


def fit_topk_sae(
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
) -> TopKSAE:
    r"""Fit a TopK sparse autoencoder on ``z`` and a least-squares head on ``y``.

    Training (CPU, deterministic for a given ``seed``): Gao et al.'s
    initialisation (decoder atoms random unit vectors, encoder = decoder
    transposed, biases 0), Adam on the mean squared reconstruction error of
    the standardised activations ``mean_{i,d} (zs_id - zs~_id)^2`` (lower is
    better), decoder atoms renormalised to unit norm after every step. No
    auxiliary loss for dead atoms: an atom never in a sample's top ``m`` keeps
    weight 0 in the head.

    Args:
        z (Tensor or ndarray): activations ``(N, D)``.
        y (Tensor or ndarray): scores ``(N,)`` or ``(N, K)``.
        n_concepts (int, optional): dictionary size. Default: 5
        seed (int, optional): seed of initialisation and shuffling. Default: 0
        pooling (str, optional): pooling of the activations. Default: "avg"
        active (int, optional): atoms kept per sample, ``m``. Default: 2
        epochs (int, optional): passes over the data. Default: 50
        batch_size (int, optional): mini-batch size. Default: 256
        lr (float, optional): Adam learning rate. Default: 1e-2

    Returns:
        *TopKSAE*: the fitted baseline (eval mode, CPU, float32).
    """
    z64, y64, k = check_fit_data(z, y, n_concepts, pooling)
    check_seed(seed)
    check_int(epochs, "epochs")
    check_int(batch_size, "batch_size")
    if check_int(active, "active") > k:
        raise ValueError(
            f"active must be an int in [1, n_concepts={k}], got {active!r}"
        )
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    n, d = z64.shape
    model = TopKSAE(d, k, active, y64.shape[1], pooling)
    std = z64.std(0) if n > 1 else torch.ones(d, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.z_mean.copy_(z64.mean(0))
        model.z_scale.copy_(torch.where(std > 1e-12, std, torch.ones_like(std)))
        atoms = torch.randn(d, k, generator=gen)
        atoms /= atoms.norm(dim=0, keepdim=True)
        model.decoder.weight.copy_(atoms)
        model.decoder.bias.zero_()
        model.encoder[0].weight.copy_(atoms.T)
        model.encoder[0].bias.zero_()
    zs = model.standardize_z(z64.float())
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=gen).split(batch_size):
            batch = zs[idx]
            loss = (model.decoder(model.encoder(batch)) - batch).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                w = model.decoder.weight
                w /= w.norm(dim=0, keepdim=True).clamp_min(1e-12)
    model.requires_grad_(False)
    return model.fit_head(z64.float(), y64)
