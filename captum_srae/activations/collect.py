#!/usr/bin/env python3
r"""Collect a layer's activations ``z`` and the model's scores ``y`` over a data set.

The SRAE is trained on these pairs. :func:`activation_batches` yields them batch
by batch through one forward hook, which it always removes (restoring the
training flags); :func:`collect_activations` concatenates them on CPU.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_srae.activations.hooks import hook_scope
from captum_srae.activations.inputs import fold_row_arguments, iter_input_batches
from captum_srae.activations.layers import layer_name, resolve_layer
from captum_srae.core.config import POOLINGS, TOKEN_POOLINGS

__all__ = [
    "POOLINGS",
    "TOKEN_POOLINGS",
    "TargetLike",
    "activation_batches",
    "check_pooling",
    "collect_activations",
    "model_device",
    "pool_activations",
]

TargetLike = int | Sequence[int] | None


def check_pooling(pooling: Any) -> str:
    r"""Check a pooling name.

    Args:
        pooling (str): one of :data:`POOLINGS`.

    Returns:
        *str*: ``pooling``.

    Raises:
        ValueError: for another ``pooling``.
    """
    if not isinstance(pooling, str) or pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    return pooling


def pool_activations(a: Tensor, pooling: str = "avg") -> Tensor:
    r"""Turn a layer output into one vector per example, shape ``(N, D)``.

    Every pooling of the package (collection, fitting, the x-feature model,
    the maps) goes through this function.

    Args:
        a (Tensor): the layer output, batch first, at least 2-D.
        pooling (str, optional): for ``a.ndim >= 3``, ``"avg"`` averages over
            all dimensions after the first two (global average pooling, ``D`` =
            channels); ``"flatten"`` keeps everything (``a.flatten(1)``). A 2-D
            ``a`` is returned unchanged by these two. The token poolings need
            a token layer ``a`` of shape ``(N, T, D)``: ``"cls"`` takes the
            class token ``a[:, 0]``, ``"mean"`` the mean over the tokens
            ``a.mean(dim=1)`` and ``"mean_patches"`` the mean over the tokens
            after the first ``a[:, 1:].mean(dim=1)``. Default: ``"avg"``

    Returns:
        Tensor: the pooled activations ``(N, D)``.

    Raises:
        ValueError: for another ``pooling``, an ``a`` with fewer than 2 dims,
            or a token pooling on an ``a`` that is not 3-D (``"mean_patches"``:
            with fewer than 2 tokens).
        TypeError: if ``a`` is not a Tensor, or is not floating point where
            the pooling must average it.

    Examples::

        >>> pool_activations(torch.ones(2, 512, 7, 7)).shape
        torch.Size([2, 512])
        >>> pool_activations(torch.ones(2, 197, 768), "cls").shape
        torch.Size([2, 768])
    """
    check_pooling(pooling)
    if not isinstance(a, Tensor):
        raise TypeError(f"activations must be a Tensor, got {type(a).__name__}")
    if a.ndim < 2:
        raise ValueError(f"activations must be at least 2-D, got {tuple(a.shape)}")
    if pooling in TOKEN_POOLINGS:
        return _pool_tokens(a, pooling)
    if a.ndim == 2:
        return a
    if pooling == "avg":
        _check_float(a, pooling)
        return a.mean(dim=tuple(range(2, a.ndim)))
    return a.flatten(1)


def _check_float(a: Tensor, pooling: str) -> None:
    if not (a.is_floating_point() or a.is_complex()):
        raise TypeError(
            "activations must be floating point to average them "
            f"(pooling={pooling!r}), got dtype {a.dtype}"
        )


def _pool_tokens(a: Tensor, pooling: str) -> Tensor:
    """The token poolings of :func:`pool_activations`."""
    if a.ndim != 3:
        hint = (
            " (a channels-last (N, H, W, C) layer, as in Swin, is not supported: "
            "use a layer with (N, C, H, W) output and pooling='avg', e.g. "
            "torchvision's Swin 'permute', or a layer with (N, T, D) output)"
            if a.ndim == 4
            else ""
        )
        raise ValueError(
            f"pooling={pooling!r} needs a token layer output (N, T, D), got shape "
            f"{tuple(a.shape)}{hint}; use pooling='avg' or 'flatten' for "
            "other layers"
        )
    if pooling == "cls":
        return a[:, 0]
    _check_float(a, pooling)
    if pooling == "mean":
        return a.mean(dim=1)
    if a.shape[1] < 2:
        raise ValueError(
            f"pooling='mean_patches' needs at least 2 tokens (a class token and "
            f"patches), got shape {tuple(a.shape)}"
        )
    return a[:, 1:].mean(dim=1)


def _check_target(target: Any) -> list[int] | None:
    if target is None:
        return None
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    try:
        if items and not any(isinstance(t, bool) for t in items):
            return [operator.index(t) for t in items]
    except TypeError:
        pass
    raise TypeError(f"target must be None, an int or a list of ints, got {target!r}")


@contextlib.contextmanager
def activation_batches(
    model: nn.Module,
    layer: str | nn.Module,
    data: Any,
    target: TargetLike = None,
    *,
    pooling: str = "avg",
    additional_forward_args: Any = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
) -> Iterator[Iterator[tuple[Tensor, Tensor]]]:
    r"""Yield ``(z, scores)`` per batch from one forward hook on ``layer``.

    On entry the model is put in eval mode; each step runs
    ``model(*inputs, *additional_forward_args)`` under ``torch.no_grad()``.
    On exit (normal, on an exception, or with the generator not exhausted) the
    hook is removed and every module's ``training`` flag is restored. The
    generator is only usable inside the ``with`` block.

    Args:
        model (nn.Module): the explained model; it must return ``(N, C)`` scores.
        layer (str or nn.Module): the layer, see :func:`resolve_layer`. If it
            runs several times per forward pass, its last output is used. With a
            multi-GPU ``nn.DataParallel``, pass ``model.module`` instead.
        data: the inputs, see :func:`iter_input_batches`.
        target (int or list of int, optional): the outputs to keep: None keeps
            all ``C``; an int gives ``(N, 1)``; a list/tuple gives ``(N, K)`` in
            that order. Default: None
        pooling (str, optional): see :func:`pool_activations`. Default: ``"avg"``
        additional_forward_args (Any, optional): extra arguments (a tuple for
            several) passed after the inputs (tensors are moved to
            ``device``). With Tensor data, leading Tensors with one row per
            example (an attention mask) are chunked with it (see
            :func:`fold_row_arguments`); the others are the same for every
            batch. Default: None
        batch_size (int, optional): chunk size for Tensor data. Default: 64
        device (str or torch.device, optional): device of the inputs; None
            uses the device of the model's first parameter (inputs are left
            where they are if it has none). Default: None

    Returns:
        Iterator of (Tensor, Tensor): ``z`` ``(n, D)`` detached pooled
        activations and ``scores`` ``(n, K)``, on the model's device.

    Raises:
        ValueError: unknown layer, bad pooling or data (on entry); during the
            iteration: a layer not reached, a model output not 2-D, a target out
            of range, or NaN/Inf in a batch (message says ``batch <i>``).
        TypeError: bad ``layer``, ``target`` or data type (on entry); during the
            iteration: a layer or model output that is not a single Tensor.

    Examples::

        >>> with activation_batches(resnet, "layer4", loader, target=3) as it:
        ...     for z, y in it:
        ...         print(z.shape, y.shape)  # (B, 512), (B, 1)
    """
    module = resolve_layer(model, layer)
    check_pooling(pooling)
    targets = _check_target(target)
    extra = () if additional_forward_args is None else additional_forward_args
    data, extra = fold_row_arguments(
        data, extra if isinstance(extra, tuple) else (extra,)
    )
    batches = iter_input_batches(data, batch_size)
    dev = model_device(model, device)
    if dev is not None:
        extra = tuple(a.to(dev) if isinstance(a, Tensor) else a for a in extra)
    capture = _Capture(model, module, pooling, extra, dev)
    flags = [(m, m.training) for m in model.modules()]
    handle = module.register_forward_hook(capture.hook)
    try:
        model.eval()
        yield capture.pairs(batches, targets)
    finally:
        capture.open = False
        handle.remove()
        for m, training in flags:
            m.training = training


def model_device(
    model: nn.Module, device: str | torch.device | None
) -> torch.device | None:
    """The device inputs are moved to.

    Args:
        model (nn.Module): the model.
        device (str or torch.device, optional): the device asked for.

    Returns:
        *torch.device or None*: ``device``; if None, the device of the
        model's first parameter, or None for a model without parameters.
    """
    if device is not None:
        return torch.device(device)
    return next((p.device for p in model.parameters()), None)


class _Capture:
    """The forward hook of :func:`activation_batches` and the passes it watches.

    Args:
        model (nn.Module): the model.
        module (nn.Module): the hooked layer.
        pooling (str): see :func:`pool_activations`.
        extra (tuple): arguments passed after the inputs.
        dev (torch.device or None): where the inputs are moved.
    """

    def __init__(
        self,
        model: nn.Module,
        module: nn.Module,
        pooling: str,
        extra: tuple[Any, ...],
        dev: torch.device | None,
    ) -> None:
        self.model, self.pooling, self.extra, self.dev = model, pooling, extra, dev
        self.name = layer_name(model, module) or type(module).__name__
        self.active, self.open = False, True
        self.mine: Callable[[], bool] = lambda: True
        self.z: Tensor | None = None

    def hook(self, _module: nn.Module, _inputs: Any, output: Any) -> None:
        """Record the pooled output of the layer in a watched pass."""
        if not self.active or not self.mine():
            return
        name = self.name
        if not isinstance(output, Tensor):
            raise TypeError(
                f"layer {name!r} must return a single Tensor, got "
                f"{type(output).__name__}; choose a layer with one tensor output"
            )
        if output.ndim < 2:
            raise ValueError(f"layer {name!r} output is {output.ndim}-D, not batched")
        z = pool_activations(output.detach(), self.pooling)
        # Copy views: later in-place ops of the model (ReLU(inplace), +=) must
        # not change the stored activations.
        self.z = z.clone() if z.data_ptr() == output.data_ptr() else z

    def pairs(
        self, batches: Iterable[tuple[Tensor, ...]], targets: list[int] | None
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Run the model on each batch; yield ``(z, scores)``."""
        for i, inputs in enumerate(batches):
            if not self.open:
                raise RuntimeError("activation_batches used after its with-block")
            if self.dev is not None:
                inputs = tuple(t.to(self.dev) for t in inputs)
            self.z = None
            self.active = True
            try:
                with hook_scope() as mine, torch.no_grad():
                    self.mine = mine
                    output = self.model(*inputs, *self.extra)
            finally:
                self.active = False
            z, self.z = self.z, None
            if z is None:
                raise ValueError(
                    f"layer {self.name!r} was not reached in the forward pass of "
                    f"batch {i}"
                )
            yield z, _select_scores(output, targets, z, i, self.name)


def _select_scores(
    output: Any, targets: list[int] | None, z: Tensor, index: int, name: str
) -> Tensor:
    """Check the model output and activations of batch ``index``; select scores."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"forward_func (the model) must return a Tensor of scores (N, C), "
            f"got {type(output).__name__}"
        )
    if output.ndim != 2:
        raise ValueError(
            f"forward_func (the model) output must be 2-D (N, C), got shape "
            f"{tuple(output.shape)}"
        )
    n_out = int(output.shape[1])
    if targets is not None:
        bad = [t for t in targets if not 0 <= t < n_out]
        if bad:
            raise ValueError(
                f"target {bad[0]} is out of range for a model with {n_out} outputs"
            )
        output = output[:, targets]
    if output.shape[0] != z.shape[0]:
        raise ValueError(
            f"batch {index}: layer activations have {z.shape[0]} rows but the model "
            f"output has {output.shape[0]}"
        )
    if not bool(torch.isfinite(z).all()):
        raise ValueError(
            f"batch {index}: the activations of layer {name!r} contain NaN or Inf"
        )
    if not bool(torch.isfinite(output).all()):
        raise ValueError(f"batch {index}: the model scores contain NaN or Inf")
    return output.detach()


def _num_batches(data: Any, batch_size: int) -> int | None:
    """The number of batches for the progress bar, or None if unknown."""
    if isinstance(data, tuple) and data and isinstance(data[0], Tensor):
        data = data[0]
    if isinstance(data, Tensor):
        return -(-int(data.shape[0]) // batch_size)
    return len(data) if hasattr(data, "__len__") else None


def collect_activations(
    model: nn.Module,
    layer: str | nn.Module,
    data: Any,
    target: TargetLike = None,
    *,
    pooling: str = "avg",
    additional_forward_args: Any = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    show_progress: bool = False,
) -> tuple[Tensor, Tensor]:
    r"""Collect pooled activations and scores over ``data``, on CPU.

    Args:
        model (nn.Module): the explained model, see :func:`activation_batches`.
        layer (str or nn.Module): the layer, see :func:`resolve_layer`.
        data: the inputs, see :func:`iter_input_batches`.
        target (int or list of int, optional): see :func:`activation_batches`.
        pooling (str, optional): see :func:`pool_activations`.
        additional_forward_args (Any, optional): see :func:`activation_batches`.
        batch_size (int, optional): chunk size for Tensor data. Default: 64
        device (str or torch.device, optional): see :func:`activation_batches`.
        show_progress (bool, optional): show a tqdm progress bar. Default: False

    Returns:
        tuple[Tensor, Tensor]: ``Z`` ``(N, D)`` and ``Y`` ``(N, K)`` on CPU.

    Raises:
        ValueError: as in :func:`activation_batches`.
        TypeError: as in :func:`activation_batches`.

    Examples::

        >>> Z, Y = collect_activations(resnet, "layer4", loader, target=[3, 7])
        >>> Z.shape, Y.shape  # (N, 512), (N, 2)
    """
    zs: list[Tensor] = []
    ys: list[Tensor] = []
    with activation_batches(
        model,
        layer,
        data,
        target,
        pooling=pooling,
        additional_forward_args=additional_forward_args,
        batch_size=batch_size,
        device=device,
    ) as batches:
        with tqdm(
            total=_num_batches(data, batch_size),
            disable=not show_progress,
            desc="Collecting activations",
            unit="batch",
        ) as bar:
            for z, y in batches:
                zs.append(z.cpu())
                ys.append(y.cpu())
                bar.update(1)
    return torch.cat(zs), torch.cat(ys)
