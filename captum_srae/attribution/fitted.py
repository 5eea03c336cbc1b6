#!/usr/bin/env python3
r"""The fitted state of :class:`~captum_srae.attribution.SRAEAttribution`.

:class:`FittedXNNs` holds what :meth:`SRAEAttribution.fit`,
:meth:`SRAEAttribution.from_sraes` and :meth:`SRAEAttribution.load` produce
(the SRAE of each class, the classes, the layer's shape) and answers the two
questions every computation asks: which class explains each example
(:meth:`FittedXNNs.targets_for`) and which SRAE and output column serve
each group of examples (:meth:`FittedXNNs.groups`). The computations
(:mod:`~captum_srae.attribution.maps`, :mod:`~captum_srae.attribution.fitting`,
:mod:`~captum_srae.attribution.persistence`) receive it as an argument, so
none of them depends on the explainer class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from captum_srae.attribution.checks import parse_target
from captum_srae.core.config import SRAEConfig
from captum_srae.core.model import SRAE
from captum_srae.utils.captum_compat import TargetType

__all__ = ["FittedXNNs"]


@dataclasses.dataclass(frozen=True)
class FittedXNNs:
    r"""The XNN(s) of a fitted explainer and what they were fitted on.

    Build it with :meth:`from_sraes`, which checks that the SRAEs fit
    together.

    Attributes:
        sraes (Mapping[int, SRAE]): class → SRAE (in eval mode); a shared SRAE
            is the value of every class.
        targets (list[int]): the fitted classes, in the column order of a
            shared SRAE.
        per_class (bool): whether each class has its own SRAE (column 0).
        layer_shape (tuple[int, ...]): the layer's output shape without the
            batch dimension (``()`` if unknown).
        n_outputs (int or None): the model's number of classes, for range
            checks.
        layer_name (str or None): the explained layer's dotted name.
    """

    sraes: Mapping[int, SRAE]
    targets: list[int]
    per_class: bool
    layer_shape: tuple[int, ...] = ()
    n_outputs: int | None = None
    layer_name: str | None = None

    @classmethod
    def from_sraes(
        cls,
        sraes: Mapping[int, SRAE] | SRAE,
        targets: Sequence[int] | None = None,
        *,
        layer_shape: Sequence[int] = (),
        n_outputs: int | None = None,
        layer_name: str | None = None,
    ) -> FittedXNNs:
        r"""The state of SRAEs trained elsewhere, checked.

        Args:
            sraes (Mapping[int, SRAE] or SRAE): one SRAE per class
                (``n_outputs=1`` each), or one shared SRAE whose
                ``n_outputs`` columns explain ``targets``.
            targets (Sequence[int], optional): the classes of a shared SRAE.
                Default: None (``range(n_outputs)``)
            layer_shape (Sequence[int], optional): see the class. Default: ()
            n_outputs (int, optional): see the class. Default: None
            layer_name (str, optional): see the class. Default: None

        Returns:
            *FittedXNNs*: the state, its SRAEs put in eval mode.

        Raises:
            ValueError: if the SRAEs do not fit together or with ``targets``.
            TypeError: if a class is not an int.

        Examples::

            >>> FittedXNNs.from_sraes({3: srae}).targets
            [3]
        """
        if isinstance(sraes, nn.Module):  # SRAE or another ConceptModel
            ts = list(range(sraes.n_outputs)) if targets is None else list(targets)
            if len(ts) != sraes.n_outputs:
                raise ValueError(
                    f"targets has {len(ts)} classes but the shared SRAE has "
                    f"{sraes.n_outputs} outputs"
                )
            table, per_class = dict.fromkeys(ts, sraes), False
        else:
            table, ts, per_class = dict(sraes), list(sraes), True
            if not table or any(s.n_outputs != 1 for s in table.values()):
                raise ValueError("sraes must map classes to SRAEs with n_outputs=1")
        if any(isinstance(t, bool) or not isinstance(t, int) for t in ts):
            raise TypeError(f"the classes of sraes/targets must be ints, got {ts}")
        if len(set(ts)) != len(ts):
            raise ValueError(f"targets holds repeated classes: {ts}")
        dims = {(s.in_features, s.n_concepts) for s in table.values()}
        if len(dims) != 1:
            raise ValueError(f"sraes differ in (in_features, n_concepts): {dims}")
        return cls(
            sraes={t: s.eval() for t, s in table.items()},
            targets=ts,
            per_class=per_class,
            layer_shape=tuple(int(d) for d in layer_shape),
            n_outputs=n_outputs,
            layer_name=layer_name,
        )

    @property
    def n_concepts(self) -> int:
        """The number of x-features of each SRAE."""
        return next(iter(self.sraes.values())).n_concepts

    @property
    def config(self) -> SRAEConfig:
        """The configuration of the (first) SRAE."""
        return next(iter(self.sraes.values())).config

    def targets_for(self, target: TargetType, n: int) -> Tensor:
        """The fitted class explained for each of ``n`` examples.

        Args:
            target (TargetType): any form of Captum's ``TargetType`` (see
                :func:`~captum_srae.attribution.checks.parse_target`), or None
                for the only fitted class.
            n (int): the number of examples.

        Returns:
            *Tensor*: the classes, ``(n,)`` of dtype ``long``.

        Raises:
            TypeError: if ``target`` has an unsupported form.
            ValueError: if ``target`` is missing while several classes were
                fitted, has the wrong length, is out of range or was not
                fitted.
        """
        items = parse_target(target, n)
        if items is None:
            if len(self.targets) != 1:
                raise ValueError(
                    f"target is required: this explainer was fitted for {self.targets}"
                )
            items = [self.targets[0]] * n
        for t in dict.fromkeys(items):
            if self.n_outputs is not None and not 0 <= t < self.n_outputs:
                raise ValueError(
                    f"target {t} is out of range for a model with "
                    f"{self.n_outputs} outputs"
                )
            if t not in self.sraes:
                raise ValueError(
                    f"target {t} was not fitted; fitted targets: {self.targets} "
                    "(fit again with this target)"
                )
        return torch.tensor(items, dtype=torch.long)

    def groups(self, tgt: Tensor) -> list[tuple[Tensor, SRAE, int]]:
        """(example indices, SRAE, output column) per explained class.

        Args:
            tgt (Tensor): the class of each example, from :meth:`targets_for`.

        Returns:
            *list[tuple[Tensor, SRAE, int]]*: one entry per class, in
            increasing class order.
        """
        out = []
        for t in sorted(set(tgt.tolist())):
            column = 0 if self.per_class else self.targets.index(t)
            out.append(((tgt == t).nonzero().flatten(), self.sraes[t], column))
        return out
