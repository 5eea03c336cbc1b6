#!/usr/bin/env python3
"""The explanation network (XNN) trained as a sparse reconstruction autoencoder."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from captum_srae.core.config import SRAEConfig
from captum_srae.core.save_format import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    SRAEFormatError,
    check_tensors,
    read_srae_folder,
    write_srae_folder,
)
from captum_srae.utils.atomic import PathLike


class SRAEOutput(NamedTuple):
    """Outputs of :meth:`SRAE.forward`.

    Attributes:
        x_features (Tensor): the x-features ``e``, shape ``(N, n_concepts)``.
        reconstruction (Tensor): the decoder output ``z~``, shape ``(N, D)``.
        prediction (Tensor): the reconstructed scores ``y^ = v^T e + b``,
            shape ``(N, n_outputs)``.
    """

    x_features: Tensor
    reconstruction: Tensor
    prediction: Tensor


class SRAE(nn.Module):
    r"""Explanation network of Qi, Khorram and Li (Embedding Deep Networks into
    Visual Explanations, https://arxiv.org/abs/1709.05360).

    An encoder embeds a layer's activation vector ``z`` (dimension ``D``) into a
    few x-features ``e = E(z)``; a linear predictor rebuilds the explained scores
    from them, ``y^ = v^T e + b``; a decoder rebuilds (part of) ``z`` from ``e``.

    When the model was fitted with standardisation, the per-dimension means and
    scales of ``z`` and ``y`` are stored as buffers and applied inside
    :meth:`encode`, :meth:`decode` and :meth:`predict`, so every public method
    works in the units of the explained model: raw activations in, raw scores
    out. :attr:`weight` and :attr:`bias` are the effective ``v`` and ``b`` in
    those units, so ``e * weight[c]`` are the contributions to output ``c``.

    Args:
        in_features (int): Dimension ``D`` of the activation vector.
        n_outputs (int, optional): Number ``K`` of explained outputs (1 for a
            one-vs-all XNN of one class). Default: 1
        config (SRAEConfig, optional): Architecture settings (``n_concepts``,
            ``hidden_sizes``, ``dropout``, ``nonnegative``). Default: SRAEConfig()
        decoder_relu (bool, optional): End the decoder with a ReLU (on the raw
            activation scale). Default: True

    Examples::

        >>> import torch
        >>> from captum_srae import SRAE, SRAEConfig
        >>> srae = SRAE(512, n_outputs=1, config=SRAEConfig(n_concepts=5))
        >>> out = srae(torch.rand(4, 512))
        >>> out.x_features.shape, out.reconstruction.shape, out.prediction.shape
        (torch.Size([4, 5]), torch.Size([4, 512]), torch.Size([4, 1]))
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: int = 1,
        config: SRAEConfig | None = None,
        decoder_relu: bool = True,
    ) -> None:
        super().__init__()
        config = SRAEConfig() if config is None else config
        if not isinstance(config, SRAEConfig):
            raise TypeError(
                f"config must be an SRAEConfig, got {type(config).__name__}"
            )
        for name, value in (("in_features", in_features), ("n_outputs", n_outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if config.n_concepts >= in_features:
            raise ValueError(
                f"n_concepts ({config.n_concepts}) must be smaller than the "
                f"activation dimension in_features ({in_features})"
            )
        self.config = config
        self.in_features = in_features
        self.n_outputs = n_outputs
        self.decoder_relu = bool(decoder_relu)
        h1, h2 = config.hidden_sizes
        n = config.n_concepts
        enc = [
            nn.Linear(in_features, h1),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.Linear(h2, n),
        ]
        if config.nonnegative:
            enc.append(nn.ReLU())
        self.encoder = nn.Sequential(*enc)
        self.decoder = nn.Sequential(
            nn.Linear(n, h2),
            nn.ReLU(),
            nn.Linear(h2, h1),
            nn.ReLU(),
            nn.Linear(h1, in_features),
        )
        self.predictor = nn.Linear(n, n_outputs)
        self.register_buffer("z_mean", torch.zeros(in_features))
        self.register_buffer("z_scale", torch.ones(in_features))
        self.register_buffer("y_mean", torch.zeros(n_outputs))
        self.register_buffer("y_scale", torch.ones(n_outputs))

    @property
    def n_concepts(self) -> int:
        """Number of x-features."""
        return self.config.n_concepts

    # ----------------------------------------------------------- raw units
    def encode(self, z: Tensor) -> Tensor:
        """Map activations ``(N, D)`` to x-features ``(N, n_concepts)``."""
        self._check_input(z, self.in_features, "z")
        return self.encode_standardized(self.standardize_z(z))

    def decode(self, e: Tensor) -> Tensor:
        """Map x-features ``(N, n_concepts)`` to reconstructed activations."""
        self._check_input(e, self.n_concepts, "e")
        return self._decode_raw(e)

    def predict(self, e: Tensor) -> Tensor:
        """Map x-features ``(N, n_concepts)`` to reconstructed scores ``(N, K)``."""
        self._check_input(e, self.n_concepts, "e")
        return self.predictor(e) * self.y_scale + self.y_mean

    def forward(self, z: Tensor) -> SRAEOutput:
        """Return :class:`SRAEOutput` (x-features, reconstruction, prediction)."""
        e = self.encode(z)
        return SRAEOutput(
            e, self._decode_raw(e), self.predictor(e) * self.y_scale + self.y_mean
        )

    @property
    def weight(self) -> Tensor:
        """Effective predictor weights ``v`` in score units, ``(K, n_concepts)``."""
        return self.predictor.weight * self.y_scale[:, None]

    @property
    def bias(self) -> Tensor:
        """Effective predictor bias ``b`` in score units, shape ``(K,)``."""
        return self.predictor.bias * self.y_scale + self.y_mean

    def contributions(self, e: Tensor) -> Tensor:
        """Per-x-feature contributions ``e_k * v_ck``, shape ``(N, K, n_concepts)``.

        Summed over the last dimension and added to :attr:`bias` they give
        :meth:`predict`.
        """
        self._check_input(e, self.n_concepts, "e")
        return e[:, None, :] * self.weight[None, :, :]

    # ------------------------------------------------- standardised space
    def standardize_z(self, z: Tensor) -> Tensor:
        """Apply the stored activation standardisation."""
        return (z - self.z_mean) / self.z_scale

    def standardize_y(self, y: Tensor) -> Tensor:
        """Apply the stored score standardisation."""
        return (y - self.y_mean) / self.y_scale

    def encode_standardized(self, zs: Tensor) -> Tensor:
        """Encoder on already standardised activations."""
        return self.encoder(zs)

    def decode_standardized(self, e: Tensor) -> Tensor:
        """Decoder output expressed in standardised activation units."""
        return self.standardize_z(self._decode_raw(e))

    def predict_standardized(self, e: Tensor) -> Tensor:
        """Predictor output in standardised score units."""
        return self.predictor(e)

    def _decode_raw(self, e: Tensor) -> Tensor:
        return self.raw_reconstruction(self.decoder(e))

    def raw_reconstruction(self, out: Tensor) -> Tensor:
        """Raw activations from the output of the last decoder layer.

        Args:
            out (Tensor): the last decoder ``Linear``'s output ``(N, D)``, in
                standardised units.

        Returns:
            *Tensor*: ``out`` in the units of the activations, through the
            decoder's final ReLU when it has one.
        """
        out = out * self.z_scale + self.z_mean
        return torch.relu(out) if self.decoder_relu else out

    def _check_input(self, x: Tensor, dim: int, name: str) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
        dtype = self.z_mean.dtype
        if x.dtype != dtype:
            raise TypeError(
                f"{name} must have the model's dtype {dtype}, got {x.dtype} "
                f"(convert with {name}.to({dtype}))"
            )
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(f"{name} must have shape (N, {dim}), got {tuple(x.shape)}")

    # --------------------------------------------------------- persistence
    def save(
        self, path: PathLike, *, metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Save to a folder holding ``config.json`` and ``weights.safetensors``.

        The folder is written next to its final place and swapped in atomically,
        so an interrupted save never damages a previous save at ``path``.

        Args:
            path (str or PathLike): Folder to write.
            metadata (dict, optional): Extra JSON-serialisable information to
                store in ``config.json`` under ``"metadata"`` (tuples come back
                as lists). Default: None

        Raises:
            TypeError: if ``metadata`` is not a JSON-serialisable dictionary.
            ValueError: if ``path`` exists and is not a directory.
            OSError: if writing fails.
        """
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        try:
            meta: dict[str, Any] = json.loads(json.dumps(dict(metadata)))
        except (TypeError, ValueError) as exc:
            raise TypeError(f"metadata must be JSON-serialisable: {exc}") from exc
        header = {
            "config": self.config.to_dict(),
            "in_features": int(self.in_features),
            "n_outputs": int(self.n_outputs),
            "decoder_relu": bool(self.decoder_relu),
            "metadata": meta,
        }
        write_srae_folder(self.state_dict(), header, path)

    @classmethod
    def load(cls, path: PathLike, map_location: str | torch.device = "cpu") -> SRAE:
        """Load a model written by :meth:`save` (JSON and safetensors only).

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            ValueError: if a file is missing, corrupt, of a newer format version,
                or holds tensors of unexpected names or shapes.
        """
        doc, tensors = read_srae_folder(path)
        try:
            srae = cls(
                doc["in_features"],
                doc["n_outputs"],
                SRAEConfig.from_dict(doc["config"]),
                decoder_relu=doc["decoder_relu"],
            )
        except (TypeError, ValueError) as exc:
            raise SRAEFormatError(
                f"{Path(path) / CONFIG_FILE} describes an invalid SRAE: {exc}"
            ) from exc
        check_tensors(tensors, srae.state_dict(), Path(path) / WEIGHTS_FILE)
        dtypes = {t.dtype for t in tensors.values()}
        if len(dtypes) == 1:  # keep e.g. float64 models in float64
            srae = srae.to(dtypes.pop())
        srae.load_state_dict(tensors, strict=True)
        return srae.to(map_location).eval()
