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
The positive side gets the fewest groups that rebuild a fraction
``explained`` of its contributions (``1 − ‖C − HW‖² / ‖C‖²``), at most its
share of the x-features, and the negative side the rest: with more groups,
NMF splits off channels that fire only when several parts are present
together (a "wing and tail" group beside the wing and the tail), and such a
group grows into one x-feature that carries the score of a whole object.
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

__all__ = [
    "MIN_POSITIVE_GROUPS",
    "RIDGE",
    "contribution_targets",
    "init_from_contributions",
]


def _least_squares(x: Tensor, target: Tensor) -> Tensor:
    """``(D + 1, M)`` weights and bias of the least-squares fit (float64)."""
    design = torch.cat([x, torch.ones_like(x[:, :1])], dim=1).double()
    return torch.linalg.pinv(design) @ target.double()


#: The positive evidence gets at least this many groups where its share
#: allows: the acceptance rule asks for two positive x-features by default
#: (``retune_min_positive``), and one group would leave one positive
#: x-feature to carry the score.
MIN_POSITIVE_GROUPS = 2

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


def _nmf(m: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, float]:
    """NMF of a nonnegative ``(N, D)`` matrix into ``k <= min(N, D)`` groups:
    the score each group carries per row ``(N, k)`` and the fraction of
    ``‖m‖²`` the factorisation rebuilds."""
    from sklearn.decomposition import NMF  # scikit-learn is heavy: import late

    with warnings.catch_warnings():  # a few hundred iterations are plenty
        warnings.simplefilter("ignore")
        model = NMF(k, init="nndsvda", max_iter=400, random_state=seed)
        h = model.fit_transform(m)
    rebuilt = 1.0 - model.reconstruction_err_**2 / float((m**2).sum())
    return h * model.components_.sum(axis=1)[None, :], rebuilt


def _fewest_possible(m: np.ndarray, k: int, explained: float) -> int:
    """The smallest rank whose truncated SVD rebuilds ``explained`` of
    ``‖m‖²`` (at most ``k``): no NMF of a lower rank can, so the search for
    the fewest groups starts there (``k`` itself when ``explained >= 1``)."""
    if explained >= 1.0:
        return k
    gram = m.T @ m if m.shape[1] <= m.shape[0] else m @ m.T  # the smaller
    energy = np.linalg.eigvalsh(gram)[::-1].clip(min=0.0)
    reached = np.cumsum(energy) / energy.sum() >= explained
    return int(min(max(int(np.argmax(reached)) + 1, 1), k))


def _group_scores(
    c: Tensor, k: int, seed: int, explained: float = 1.0, at_least: int = 1
) -> Tensor:
    """NMF of a nonnegative contribution matrix ``(N, D)`` into at most ``k``
    groups: the fewest (but at least ``at_least``) that rebuild ``explained``
    of it (all ``k`` with ``explained=1``); the score each group carries per
    row, ``(N, groups)``."""
    m = c.clamp_min(0).cpu().numpy().astype(np.float64)
    fit = min(k, m.shape[0], m.shape[1])  # NMF needs k <= rows and columns
    if fit == 0 or not np.any(m > 0):
        return c.new_zeros(c.shape[0], 0)  # no such evidence
    first = min(max(_fewest_possible(m, fit, explained), at_least), fit)
    for groups in range(first, fit + 1):
        scores, rebuilt = _nmf(m, groups, seed)
        if rebuilt >= explained:
            break
    return torch.as_tensor(scores, dtype=c.dtype, device=c.device)


def contribution_targets(
    z: Tensor, y: Tensor, n_concepts: int, seed: int = 0, explained: float = 0.99
) -> tuple[Tensor, int]:
    r"""The scores carried by groups of co-firing channels (see the module).

    Args:
        z (Tensor): raw (nonnegative for the intended use) activations
            ``(N, D)``.
        y (Tensor): scores ``(N, K)``; with ``K > 1`` the contributions of
            the outputs are placed side by side.
        n_concepts (int): number of targets. The positive side may use up
            to its share of them, in proportion to the variance of each
            side's total (at least one each when ``n_concepts >= 2``): the
            fewest groups that rebuild ``explained`` of its contributions,
            and at least :data:`MIN_POSITIVE_GROUPS` where its share allows.
            The negative side gets the rest. Targets a side has too few
            channels for are zero (their x-features start dead and are
            revived with ``revive_dead``).
        seed (int, optional): ``random_state`` of the NMF. Default: 0
        explained (float, optional): the fraction of the positive side's
            contribution matrix its groups must rebuild; 1 gives it its
            whole share (the start before this option). Default: 0.99

    Returns:
        *tuple*: the targets ``(N, n_concepts)``, nonnegative, each scaled to
        unit standard deviation (zero targets stay zero; positive evidence
        first), and the number of positive-evidence targets.
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
    t_pos = _group_scores(pos, k_pos, seed, explained, MIN_POSITIVE_GROUPS)
    t_neg = _group_scores(neg, n_concepts - t_pos.shape[1], seed)  # the rest
    rest = n_concepts - t_pos.shape[1] - t_neg.shape[1]
    t = torch.cat([t_pos, t_neg, t_pos.new_zeros(t_pos.shape[0], rest)], dim=1)
    std = t.std(dim=0) if t.shape[0] > 1 else torch.ones_like(t[0])
    return (t / std.clamp_min(1e-6)).to(z.dtype), t_pos.shape[1]


def init_from_contributions(
    srae: SRAE, zs: Tensor, ys: Tensor, seed: int, explained: float = 0.99
) -> None:
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
        explained (float, optional): ``explained`` of
            :func:`contribution_targets`. Default: 0.99
    """
    enc, dec = srae.encoder, srae.decoder
    with torch.no_grad():
        z = zs * srae.z_scale + srae.z_mean  # raw units: nonnegative channels
        t, _ = contribution_targets(z, ys, srae.n_concepts, seed, explained)
        h = torch.relu(enc[3](torch.relu(enc[0](zs))))
        sol = _least_squares(h, t)
        enc[5].weight.copy_(sol[:-1].t().to(enc[5].weight.dtype))
        enc[5].bias.copy_(sol[-1].to(enc[5].bias.dtype))
        back = _least_squares(t, h)
        dec[0].weight.copy_(back[:-1].t().to(dec[0].weight.dtype))
        dec[0].bias.copy_(back[-1].to(dec[0].bias.dtype))
