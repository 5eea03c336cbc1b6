#!/usr/bin/env python3
r"""The project's own start for the x-features (``SRAEConfig(init=
"contributions")``): each x-feature begins as the score carried by one group
of activation channels that fire together.

A ridge fit of the (standardised) score on the activations
``y ≈ Σ_d w_d z_d + b`` (penalty :data:`RIDGE` × N on the weights of the
standardised activations) splits the score into per-channel contributions
``c_id = z_id w_d``. The channels with ``w_d > 0`` carry positive evidence,
the others negative evidence. Each side's contribution matrix is factorised
by NMF, ``C ≈ H W``, into groups of channels whose contributions rise and fall
together across the data (for an image model: the parts of the evidence).
Group ``k`` carries the score ``t_ik = H_ik Σ_d W_kd`` of image ``i``; those are
the targets of the x-features. The x-feature layer of the encoder (and the
first decoder layer, its mirror) are then set by least squares from the
pretrained second hidden layer, and fine-tuning proceeds as usual.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from captum_srae.core.model import SRAE

__all__ = ["RIDGE", "contribution_targets", "init_from_contributions"]


def _least_squares(x: Tensor, target: Tensor) -> Tensor:
    """``(D + 1, M)`` weights and bias of the least-squares fit (float64)."""
    design = torch.cat([x, torch.ones_like(x[:, :1])], dim=1).double()
    return torch.linalg.pinv(design) @ target.double()


#: Ridge penalty of the score's fit on the activations, relative to the
#: number of rows (each activation standardised): it keeps correlated
#: channels of one part from taking weights of opposite signs.
RIDGE = 0.1


def _ridge(z: Tensor, y: Tensor, ridge: float) -> Tensor:
    """``(D, K)`` ridge weights of ``y`` on ``z`` in raw units (the penalty
    ``ridge * N`` on the weights of the standardised activations)."""
    z64, y64 = z.double(), y.double()
    mean, std = z64.mean(0), z64.std(0).clamp_min(1e-12)
    x = (z64 - mean) / std
    yc = y64 - y64.mean(0)
    eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    gram = x.t() @ x + ridge * x.shape[0] * eye
    return torch.linalg.solve(gram, x.t() @ yc) / std[:, None]


def _group_scores(c: Tensor, k: int, seed: int) -> Tensor:
    """NMF of a nonnegative contribution matrix ``(N, D)`` into ``k`` groups;
    the score each group carries per row, ``(N, k)``."""
    from sklearn.decomposition import NMF  # scikit-learn is heavy: import late

    if k == 0:
        return c.new_zeros(c.shape[0], 0)
    m = c.clamp_min(0).cpu().numpy().astype(np.float64)
    fit = min(k, m.shape[0], m.shape[1])  # NMF needs k <= rows and columns
    if fit == 0 or not np.any(m > 0):
        return c.new_zeros(c.shape[0], k)  # no such evidence: start dead
    if fit < k:
        pad = c.new_zeros(c.shape[0], k - fit)
        return torch.cat([_group_scores(c, fit, seed), pad], dim=1)
    with warnings.catch_warnings():  # a few hundred iterations are plenty
        warnings.simplefilter("ignore")
        model = NMF(k, init="nndsvda", max_iter=400, random_state=seed)
        h = model.fit_transform(m)
    scores = h * model.components_.sum(axis=1)[None, :]
    return torch.as_tensor(scores, dtype=c.dtype, device=c.device)


def contribution_targets(
    z: Tensor, y: Tensor, n_concepts: int, seed: int = 0
) -> tuple[Tensor, int]:
    r"""The scores carried by groups of co-firing channels (see the module).

    Args:
        z (Tensor): raw (nonnegative for the intended use) activations
            ``(N, D)``.
        y (Tensor): scores ``(N, K)``; with ``K > 1`` the contributions of
            the outputs are placed side by side.
        n_concepts (int): number of targets, split between positive and
            negative evidence in proportion to the variance of each side's
            total (at least one each when ``n_concepts >= 2``).
        seed (int, optional): ``random_state`` of the NMF. Default: 0

    Returns:
        *tuple*: the targets ``(N, n_concepts)``, nonnegative, each scaled to
        unit standard deviation (positive evidence first), and the number
        of positive-evidence targets.
    """
    w = _ridge(z, y, RIDGE)  # (D, K)
    c = torch.cat([z.double() * w[:, j] for j in range(w.shape[1])], dim=1)
    sign = torch.cat([w[:, j] for j in range(w.shape[1])]) > 0
    pos, neg = c[:, sign], -c[:, ~sign]
    var_pos, var_neg = float(pos.sum(1).var()), float(neg.sum(1).var())
    k_pos = n_concepts
    if n_concepts >= 2:
        share = var_pos / max(var_pos + var_neg, 1e-12)
        k_pos = int(min(max(round(n_concepts * share), 1), n_concepts - 1))
    t = torch.cat(
        [_group_scores(pos, k_pos, seed), _group_scores(neg, n_concepts - k_pos, seed)],
        dim=1,
    )
    std = t.std(dim=0) if t.shape[0] > 1 else torch.ones_like(t[0])
    return (t / std.clamp_min(1e-6)).to(z.dtype), k_pos


def init_from_contributions(srae: SRAE, zs: Tensor, ys: Tensor, seed: int) -> None:
    """Set the x-feature layer (and its decoder mirror) to the contribution
    targets of standardised rows ``zs`` ``(N, D)`` and scores ``ys`` ``(N, K)``.

    The first two encoder layers must be pretrained; the encoder's last
    linear layer is fitted by least squares from their output to
    :func:`contribution_targets`, the decoder's first layer from the targets
    back to that output.

    Args:
        srae (SRAE): the network (changed in place).
        zs (Tensor): standardised training activations.
        ys (Tensor): standardised training scores.
        seed (int): seed of the factorisation.
    """
    enc, dec = srae.encoder, srae.decoder
    with torch.no_grad():
        z = zs * srae.z_scale + srae.z_mean  # raw units: nonnegative channels
        t, _ = contribution_targets(z, ys, srae.n_concepts, seed)
        h = torch.relu(enc[3](torch.relu(enc[0](zs))))
        sol = _least_squares(h, t)
        enc[5].weight.copy_(sol[:-1].t().to(enc[5].weight.dtype))
        enc[5].bias.copy_(sol[-1].to(enc[5].bias.dtype))
        back = _least_squares(t, h)
        dec[0].weight.copy_(back[:-1].t().to(dec[0].weight.dtype))
        dec[0].bias.copy_(back[-1].to(dec[0].bias.dtype))
