#!/usr/bin/env python3
"""Hyperparameters of the explanation network and its training: :class:`SRAEConfig`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal, get_args

from captum_srae.utils.validation import check_bool, check_int

PullAwayAxis = Literal["images", "features", "correlation"]
#: The values of ``SRAEConfig.pull_away_axis`` (and of the ``axis`` of the
#: pull-away term and metric).
PULL_AWAY_AXES: tuple[str, ...] = get_args(PullAwayAxis)
Reconstruction = Literal["log", "mse"]
Pooling = Literal["avg", "flatten", "cls", "mean", "mean_patches"]

#: The poolings of :attr:`SRAEConfig.pooling`: ``"avg"`` and ``"flatten"``
#: for any layer, the others for token layers ``(N, T, D)`` only.
POOLINGS: tuple[str, ...] = ("avg", "flatten", "cls", "mean", "mean_patches")
#: The poolings of a token layer ``(N, T, D)`` (a vision transformer block).
TOKEN_POOLINGS: tuple[str, ...] = ("cls", "mean", "mean_patches")
Init = Literal["autoencoder", "contributions"]

_PRESETS = ("default", "qi2021")
#: The integer fields (but ``hidden_sizes`` and ``epoch_samples``) and their
#: smallest allowed values, in the order they are checked.
_INT_FIELDS = (
    ("n_concepts", 1),
    ("lr_step_epochs", 1),
    ("batch_size", 1),
    ("max_epochs", 1),
    ("patience", 1),
    ("retune_rounds", 1),
    ("pretrain_epochs", 0),
    ("retune_min_positive", 0),
    ("max_lr_decays", 0),
    ("seed", 0),
    ("nan_retries", 0),
)


#: The training schedule of the authors' code (and of this package before
#: 0.2): minibatches of 50, Adam at 1e-3, epochs over every training row,
#: fine-tuning rounds restarted from the pretrained network, x-features
#: started by the layer-wise autoencoder.
QI2021_SCHEDULE: dict[str, Any] = {
    "lr": 1e-3,
    "lr_step_epochs": 40,
    "batch_size": 50,
    "pretrain_epochs": 5,
    "max_epochs": 100,
    "patience": 10,
    "epoch_samples": None,
    "retune_warm_start": False,
    "init": "autoencoder",
}


@dataclasses.dataclass(frozen=True)
class SRAEConfig:
    r"""Every hyperparameter of an SRAE explanation network and of its training.

    Two named presets exist (:meth:`preset`):

    - ``"default"`` (the dataclass defaults): the architecture, reconstruction
      penalty and pull-away term of Qi, Khorram and Li, plus standardisation
      of the activations and of the explained scores and a prediction weight
      of 50, trained on a fixed work budget (``epoch_samples`` rows an epoch,
      minibatches of 128, warm-started re-tuning rounds) so that a fit costs
      the same whatever the number of rows. The authors' weights (1, 10, 10)
      were tuned for raw logits spanning tens; on scores of smaller range the
      reconstruction and pull-away terms dominate and faithfulness collapses.
      Standardising both sides makes the balance of the three terms
      independent of the units of the model, so one set of weights works for
      any layer and any score scale. The x-features start as the parts of
      the score (``init="contributions"``, the project's own).
    - ``"qi2021"``: the authors' values exactly (no standardisation,
      ``alpha_pred=1, alpha_rec=10, alpha_pt=10``, and their schedule
      :data:`QI2021_SCHEDULE`: minibatches of 50, epochs over all rows,
      re-tuning restarted from the pretrained network).

    Args:
        n_concepts (int): Number of x-features ``n``. Default: 5
        hidden_sizes (tuple[int, int]): Widths of the two hidden layers of the
            encoder (mirrored in the decoder). Default: (800, 100)
        dropout (float): Dropout after the first encoder layer. Default: 0.02
        q (float): Scale inside the sparse reconstruction log penalty
            ``log(1 + q * mse_d)``. Default: 100
        alpha_pred (float): Weight of the faithfulness (prediction) loss.
            Default: 50
        alpha_rec (float): Weight of the reconstruction loss. Default: 10
        alpha_pt (float): Weight of the pull-away term. Default: 10
        pull_away_axis (str): ``"images"`` (rows of the x-feature matrix, the
            authors' code), ``"features"`` (its columns) or
            ``"correlation"`` (its columns centred over the batch: squared
            Pearson correlations, the project's own; it lets parts that
            occur together keep separate x-features). Default: "images"
        v_weighting (bool): Apply the pull-away term to ``e * v_c`` (summed over
            outputs ``c``) instead of ``e``. Default: True
        nonnegative (bool): End the encoder with a ReLU so that x-features are
            nonnegative. Default: True
        reconstruction (str): ``"log"`` (sparse reconstruction) or ``"mse"``
            (plain autoencoder, the ablation). Default: "log"
        pooling (str): How the layer output becomes the vector ``z``. For a
            convolutional layer ``(N, C, H, W)``: ``"avg"`` (global average
            pooling) or ``"flatten"``. For a token layer ``(N, T, D)`` (a
            vision transformer block): ``"cls"`` (the class token,
            ``a[:, 0]``), ``"mean"`` (the mean over all tokens) or
            ``"mean_patches"`` (the mean over the tokens after the first, the
            patch tokens). Default: "avg"
        standardize (bool): Standardise activations (per dimension) and scores
            (per output) on the training split before fitting; the fitted model
            still maps raw activations to raw scores. Default: True
        decoder_relu (bool or None): End the decoder with a ReLU. ``None``
            decides from the data: on when every training activation is
            nonnegative. Default: None
        lr (float): Adam learning rate of every stage. Default: 2e-3
        weight_decay (float): Adam weight decay of fine-tuning. Default: 1e-4
        lr_step_epochs (int): Multiply the learning rate by ``lr_gamma`` every
            this many fine-tuning epochs. Default: 15
        lr_gamma (float): Learning-rate decay factor. Default: 0.1
        batch_size (int): Mini-batch size of every stage. Default: 128
        pretrain_epochs (int): Epochs of each layer-wise pretraining
            autoencoder; 0 skips pretraining. Default: 3
        max_epochs (int): Upper bound on fine-tuning epochs per round.
            Default: 40
        patience (int): Epochs without improvement of the held-out
            faithfulness that count as a plateau. On a plateau the learning
            rate steps early (from the best weights so far) while fewer than
            ``max_lr_decays`` steps were taken; otherwise fine-tuning stops.
            Default: 5
        max_lr_decays (int): Learning-rate steps (scheduled or on a plateau)
            after which a plateau stops fine-tuning. Default: 2
        val_fraction (float): Fraction of samples held out for early stopping
            and for reporting faithfulness. Default: 0.2
        retune_rounds (int): Maximum number of training rounds of the automatic
            re-tuning loop (1 disables re-tuning, and the warning when the
            acceptance rule fails). Default: 5
        retune_min_positive (int): Acceptance rule: at least this many
            x-features with a positive mean contribution. Default: 2
        retune_min_ratio (float): Acceptance rule: the second largest mean
            contribution is at least this fraction of the largest. Default: 0.3
        retune_rec_factor (float): Factor on ``alpha_rec`` after a rejected
            round. Default: 1.2
        retune_pt_factor (float): Factor on ``alpha_pt`` after a rejected round.
            Default: 0.8
        retune_warm_start (bool): Start a re-tuning round from the weights of
            the previous round instead of the pretrained network, so that a
            round costs a few epochs instead of a whole fine-tuning. Not in
            the authors' code (``"qi2021"`` sets it off). Default: True
        revive_dead (bool): Keep every x-feature alive: centre the biases of
            each pretraining encoder layer on the median of its pre-activations
            (so each unit starts active on half of the data), and re-centre an
            x-feature that is inactive on every training sample after
            pretraining and after each fine-tuning epoch (a dead ReLU unit gets
            no gradient and never recovers). Not in the authors' code; it
            prevents the dead x-features of method.md 4.7. Default: True
        seed (int): Seed of initialisation, dropout, shuffling and the split.
            Default: 0
        epoch_samples (int or None): The work budget of an epoch: each
            pretraining and fine-tuning epoch trains on this many training
            rows, drawn afresh every epoch (without replacement; with fewer
            training rows than this, several shuffled passes make up the
            epoch), early stopping watches a fixed random subset of at most
            this many held-out rows, and the dead-x-feature checks and the
            mean contributions of the re-tuning rule look at a fixed subset
            of at most this many training rows. So a fit costs the same
            whatever ``N`` beyond reading the data once (standardisation,
            the least-squares initialisation, the final held-out R² on every
            held-out row). ``None`` makes an epoch one pass over every
            training row and watches every held-out row (the authors' way,
            whose cost grows with ``N``). Default: 4096
        nan_retries (int): Training-fault budget: when an epoch (of
            pretraining or fine-tuning) produces a NaN/Inf loss or weights, the
            state at the start of the epoch is restored and the epoch is run
            again with the learning rate times 0.1, at most this many times in
            a row; then :class:`~captum_srae.training.history.TrainingDivergedError` is
            raised. 0 raises at the first fault. Default: 3
        init (str): How the x-feature layer starts. ``"autoencoder"``: the
            third stage of the authors' layer-wise pretraining.
            ``"contributions"`` (the project's own, not in the paper): the
            per-channel contributions ``z_d w_d`` of a least-squares fit of
            the score on the raw activations are split into positive and
            negative evidence, each factorised by NMF into groups of channels
            that fire together (the parts of the evidence), and the
            x-feature layer is set by least squares so that each x-feature
            starts as the score one group carries; fine-tuning then goes on
            as usual. On problems with known parts it separates them where
            the autoencoder start does not (docs/concepts.rst; ``"qi2021"``
            sets ``"autoencoder"``). With ``pretrain_epochs=0`` neither start
            runs. Default: "contributions"
        init_explained (float): With ``init="contributions"``, the
            positive evidence gets the fewest NMF groups (at most its share
            of ``n_concepts``, at least two where the share allows) that
            rebuild this fraction of its per-channel contributions, and the
            negative evidence the other x-features.
            Fewer groups keep NMF from splitting off channels that fire only
            when two parts are present together, a group that would grow
            into one x-feature for the whole object (docs/concepts.rst,
            "Parts that occur together"). 1 gives the positive side its
            whole share (the start before this field). Default: 0.99

    Examples::

        >>> from captum_srae import SRAEConfig
        >>> cfg = SRAEConfig(n_concepts=8)
        >>> SRAEConfig.from_dict(cfg.to_dict()) == cfg
        True
        >>> SRAEConfig.preset("qi2021").alpha_pred
        1.0
    """

    n_concepts: int = 5
    hidden_sizes: tuple[int, int] = (800, 100)
    dropout: float = 0.02
    q: float = 100.0
    alpha_pred: float = 50.0
    alpha_rec: float = 10.0
    alpha_pt: float = 10.0
    pull_away_axis: PullAwayAxis = "images"
    v_weighting: bool = True
    nonnegative: bool = True
    reconstruction: Reconstruction = "log"
    pooling: Pooling = "avg"
    standardize: bool = True
    decoder_relu: bool | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    lr_step_epochs: int = 15
    lr_gamma: float = 0.1
    batch_size: int = 128
    pretrain_epochs: int = 3
    max_epochs: int = 40
    patience: int = 5
    max_lr_decays: int = 2
    val_fraction: float = 0.2
    retune_rounds: int = 5
    retune_min_positive: int = 2
    retune_min_ratio: float = 0.3
    retune_rec_factor: float = 1.2
    retune_pt_factor: float = 0.8
    retune_warm_start: bool = True
    revive_dead: bool = True
    seed: int = 0
    nan_retries: int = 3
    epoch_samples: int | None = 4096
    init: Init = "contributions"
    init_explained: float = 0.99

    def __post_init__(self) -> None:
        hs = self.hidden_sizes
        if isinstance(hs, list):
            object.__setattr__(self, "hidden_sizes", tuple(hs))
            hs = self.hidden_sizes
        if not (isinstance(hs, tuple) and len(hs) == 2):
            raise ValueError(
                f"hidden_sizes must be two positive integers, got {self.hidden_sizes!r}"
            )
        sizes = tuple(_field_int(h, "hidden_sizes", 1) for h in hs)
        object.__setattr__(self, "hidden_sizes", sizes)
        for name, minimum in _INT_FIELDS:
            value = _field_int(getattr(self, name), name, minimum)
            object.__setattr__(self, name, value)
        for name in ("q", "lr", "lr_gamma", "retune_rec_factor", "retune_pt_factor"):
            value = getattr(self, name)
            if not _is_number(value) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        for name in ("alpha_pred", "alpha_rec", "alpha_pt", "weight_decay"):
            value = getattr(self, name)
            if not _is_number(value) or not value >= 0:
                raise ValueError(f"{name} must be a nonnegative number, got {value!r}")
        if not _is_number(self.dropout) or not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not _is_number(self.init_explained) or not 0 < self.init_explained <= 1:
            raise ValueError(
                f"init_explained must be in (0, 1], got {self.init_explained!r}"
            )
        if not _is_number(self.val_fraction) or not 0 < self.val_fraction < 1:
            raise ValueError(
                f"val_fraction must be in (0, 1), got {self.val_fraction!r}"
            )
        if not _is_number(self.retune_min_ratio) or not self.retune_min_ratio >= 0:
            raise ValueError(
                "retune_min_ratio must be a nonnegative number, "
                f"got {self.retune_min_ratio!r}"
            )
        if self.epoch_samples is not None:
            samples = _field_int(self.epoch_samples, "epoch_samples", 1)
            object.__setattr__(self, "epoch_samples", samples)
            if samples < self.batch_size:
                raise ValueError(
                    f"epoch_samples ({samples}) must be at least batch_size "
                    f"({self.batch_size}): an epoch of fewer rows than one "
                    "minibatch is too small a budget to fit; raise "
                    "epoch_samples or lower batch_size"
                )
        _check_choice("pull_away_axis", self.pull_away_axis, PULL_AWAY_AXES)
        _check_choice("reconstruction", self.reconstruction, ("log", "mse"))
        _check_choice("pooling", self.pooling, POOLINGS)
        _check_choice("init", self.init, ("autoencoder", "contributions"))
        for name in (
            "v_weighting",
            "nonnegative",
            "standardize",
            "retune_warm_start",
            "revive_dead",
        ):
            check_bool(getattr(self, name), name)
        if self.decoder_relu is not None and not isinstance(self.decoder_relu, bool):
            raise TypeError(
                f"decoder_relu must be a bool or None, got {self.decoder_relu!r}"
            )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SRAEConfig:
        r"""Build a named preset, optionally overriding some fields.

        Args:
            name (str): ``"default"`` or ``"qi2021"`` (the authors' values:
                no standardisation, ``alpha_pred=1, alpha_rec=10, alpha_pt=10``
                and their schedule :data:`QI2021_SCHEDULE`).
            **overrides: Fields to change in the preset.

        Returns:
            *SRAEConfig*: the configuration.
        """
        if name == "default":
            base = cls()
        elif name == "qi2021":
            base = cls(
                alpha_pred=1.0,
                alpha_rec=10.0,
                alpha_pt=10.0,
                standardize=False,
                **QI2021_SCHEDULE,
            )
        else:
            raise ValueError(f"name must be one of {_PRESETS}, got {name!r}")
        return base.replace(**overrides) if overrides else base

    def replace(self, **changes: Any) -> SRAEConfig:
        """Return a copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dictionary of every field."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SRAEConfig:
        """Build a configuration from :meth:`to_dict` output.

        Raises:
            TypeError: if ``data`` is not a mapping.
            ValueError: if it holds unknown fields or invalid values.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"data has unknown SRAEConfig fields: {unknown}")
        kwargs = dict(data)
        if "hidden_sizes" in kwargs and isinstance(kwargs["hidden_sizes"], list):
            kwargs["hidden_sizes"] = tuple(kwargs["hidden_sizes"])
        return cls(**kwargs)

    def to_json(self) -> str:
        """Return the configuration as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)


def _field_int(value: Any, name: str, minimum: int) -> int:
    """:func:`check_int` for a field; a bad value is a ValueError, like every
    other invalid field."""
    try:
        return check_int(value, name, minimum=minimum)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
