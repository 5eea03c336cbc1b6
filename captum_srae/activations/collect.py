#!/usr/bin/env python3
r"""Collect a layer's activations ``z`` and the model's scores ``y`` over a data set.

The SRAE is trained on these pairs. :func:`activation_batches` yields them batch
by batch through one forward hook, which it always removes (restoring the
training flags); :func:`collect_activations` concatenates them on CPU.
"""

from __future__ import annotations

import contextlib
import difflib
import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_srae.activations.hooks import hook_scope

POOLINGS = ("avg", "flatten")
TargetLike = int | Sequence[int] | None


def resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    r"""Return the submodule of ``model`` named or given by ``layer``.

    Args:
        model (nn.Module): the explained model.
        layer (str or nn.Module): a dotted name as listed by
            ``model.named_modules()`` (e.g. ``"layer4"``, ``"layer4.1.conv2"``,
            ``"features.3"``) or a module of ``model``.

    Returns:
        nn.Module: the layer.

    Raises:
        ValueError: if no submodule has that name (close matches are suggested)
            or the module is not part of ``model``.
        TypeError: if ``layer`` is neither a string nor a module.

    Examples::

        >>> conv = resolve_layer(resnet, "layer4.1.conv2")
    """
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer in modules:
            return modules[layer]
        names = [name for name in modules if name]
        close = difflib.get_close_matches(layer, names, n=3)
        hint = f"did you mean {' or '.join(map(repr, close))}?" if close else ""
        if not close:
            hint = f"available names: {', '.join(map(repr, names[:8]))}, ..."
        raise ValueError(
            f"layer {layer!r} is not a submodule of {type(model).__name__}; {hint}"
        )
    if isinstance(layer, nn.Module):
        if any(module is layer for module in model.modules()):
            return layer
        raise ValueError(
            f"layer {type(layer).__name__} is not a submodule of "
            f"{type(model).__name__}; pass one of its modules or a dotted name"
        )
    raise TypeError(
        f"layer must be a dotted name (str) or an nn.Module, got {type(layer).__name__}"
    )


def layer_name(model: nn.Module, module: nn.Module) -> str | None:
    r"""Return the dotted name of ``module`` inside ``model`` (``""`` for the model).

    Args:
        model (nn.Module): the model.
        module (nn.Module): a module, possibly of ``model``.

    Returns:
        str or None: its name as in ``model.named_modules()``, or None if
        ``module`` is not part of ``model``.

    Examples::

        >>> layer_name(resnet, resnet.layer4[1].conv2)
        'layer4.1.conv2'
    """
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    return None


def pool_activations(a: Tensor, pooling: str = "avg") -> Tensor:
    r"""Turn a layer output into one vector per example, shape ``(N, D)``.

    Args:
        a (Tensor): the layer output, batch first, at least 2-D.
        pooling (str, optional): for ``a.ndim >= 3``, ``"avg"`` averages over
            all dimensions after the first two (global average pooling, ``D`` =
            channels); ``"flatten"`` keeps everything (``a.flatten(1)``). A 2-D
            ``a`` is returned unchanged. Default: ``"avg"``

    Returns:
        Tensor: the pooled activations ``(N, D)``.

    Raises:
        ValueError: for another ``pooling`` or an ``a`` with fewer than 2 dims.
        TypeError: if ``a`` is not a Tensor, or is not floating point where
            ``"avg"`` pooling must average it.

    Examples::

        >>> pool_activations(torch.ones(2, 512, 7, 7)).shape
        torch.Size([2, 512])
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not isinstance(a, Tensor):
        raise TypeError(f"activations must be a Tensor, got {type(a).__name__}")
    if a.ndim < 2:
        raise ValueError(f"activations must be at least 2-D, got {tuple(a.shape)}")
    if a.ndim == 2:
        return a
    if pooling == "avg":
        if not (a.is_floating_point() or a.is_complex()):
            raise TypeError(
                "activations must be floating point to average them "
                f"(pooling='avg'), got dtype {a.dtype}"
            )
        return a.mean(dim=tuple(range(2, a.ndim)))
    return a.flatten(1)


def _batch_inputs(batch: Any, index: int) -> tuple[Tensor, ...]:
    """The input tensors of one batch drawn from an iterable (see below)."""
    if isinstance(batch, dict):
        raise TypeError(
            f"batch {index} is a dict; dict batches are not supported: map them to "
            "tensors or (inputs, labels), e.g. (b['pixel_values'] for b in loader)"
        )
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError(f"batch {index} is an empty {type(batch).__name__}")
        batch = batch[0]
    inputs = tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)
    if not inputs or not all(isinstance(t, Tensor) for t in inputs):
        raise TypeError(
            f"batch {index}: the input must be a Tensor or a tuple of Tensors, got "
            f"{type(batch).__name__}"
        )
    _check_lengths(inputs, f"batch {index}")
    return inputs


def _check_lengths(inputs: tuple[Tensor, ...], where: str) -> int:
    if any(t.ndim == 0 for t in inputs):
        raise ValueError(f"{where}: inputs must have a batch dimension, got 0-D")
    lengths = {int(t.shape[0]) for t in inputs}
    if len(lengths) > 1:
        raise ValueError(f"{where}: inputs differ in length along dim 0: {lengths}")
    return lengths.pop()


def iter_input_batches(data: Any, batch_size: int = 64) -> Iterator[tuple[Tensor, ...]]:
    r"""Normalise the data forms accepted by :func:`collect_activations`.

    Args:
        data: one of

            - a Tensor ``(N, ...)``: split into chunks of ``batch_size``;
            - a tuple of Tensors of equal length (inputs of a multi-input
              model): chunked together;
            - a DataLoader or any other iterable of batches (``batch_size`` is
              then ignored). A batch is a Tensor, or a tuple/list whose first
              element is the input (a Tensor, or a tuple of Tensors for a
              multi-input model) and whose other elements (labels) are dropped.
              A ``DataLoader(TensorDataset(x, labels))`` thus gives ``x``.
        batch_size (int, optional): chunk size for Tensor data. Default: 64

    Returns:
        Iterator of tuple[Tensor, ...]: the inputs of each batch, as a tuple.

    Raises:
        ValueError: if ``data`` has no batches, ``batch_size < 1``, or the
            inputs differ in length.
        TypeError: for dict batches, or batches/data of another type.

    Examples::

        >>> [b[0].shape[0] for b in iter_input_batches(torch.zeros(5, 3), 2)]
        [2, 2, 1]
    """
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if isinstance(data, Tensor) or (
        isinstance(data, tuple) and data and all(isinstance(t, Tensor) for t in data)
    ):
        tensors = (data,) if isinstance(data, Tensor) else tuple(data)
        n = _check_lengths(tensors, "data")
        if n == 0:
            raise ValueError("data yielded no batches")
        return (
            tuple(t[i : i + batch_size] for t in tensors)
            for i in range(0, n, batch_size)
        )
    if isinstance(data, (str, bytes, dict)) or not isinstance(data, Iterable):
        raise TypeError(
            "data must be a Tensor, a tuple of Tensors or an iterable of batches, "
            f"got {type(data).__name__}"
        )
    return _iter_batches(data)


def _iter_batches(data: Iterable[Any]) -> Iterator[tuple[Tensor, ...]]:
    index = -1
    for index, batch in enumerate(data):
        yield _batch_inputs(batch, index)
    if index < 0:
        raise ValueError("data yielded no batches")


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
            several) passed after the inputs, unchanged for every batch (tensors
            are moved to ``device``); per-example inputs belong in ``data``.
            Default: None
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
    name = layer_name(model, module) or type(module).__name__
    pool_activations(torch.zeros(1, 1), pooling)  # validates ``pooling``
    targets = _check_target(target)
    batches = iter_input_batches(data, batch_size)
    extra = () if additional_forward_args is None else additional_forward_args
    extra = extra if isinstance(extra, tuple) else (extra,)
    params = (p.device for p in model.parameters())
    dev = torch.device(device) if device is not None else next(params, None)
    if dev is not None:
        extra = tuple(a.to(dev) if isinstance(a, Tensor) else a for a in extra)
    state: dict[str, Any] = {"active": False, "open": True, "mine": lambda: True}

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if not state["active"] or not state["mine"]():
            return
        if not isinstance(output, Tensor):
            raise TypeError(
                f"layer {name!r} must return a single Tensor, got "
                f"{type(output).__name__}; choose a layer with one tensor output"
            )
        if output.ndim < 2:
            raise ValueError(f"layer {name!r} output is {output.ndim}-D, not batched")
        z = pool_activations(output.detach(), pooling)
        # Copy views: later in-place ops of the model (ReLU(inplace), +=) must
        # not change the stored activations.
        state["z"] = z.clone() if z.data_ptr() == output.data_ptr() else z

    def generate() -> Iterator[tuple[Tensor, Tensor]]:
        for i, inputs in enumerate(batches):
            if not state["open"]:
                raise RuntimeError("activation_batches used after its with-block")
            if dev is not None:
                inputs = tuple(t.to(dev) for t in inputs)
            state.pop("z", None)
            state["active"] = True
            try:
                with hook_scope() as mine, torch.no_grad():
                    state["mine"] = mine
                    output = model(*inputs, *extra)
            finally:
                state["active"] = False
            if "z" not in state:
                raise ValueError(
                    f"layer {name!r} was not reached in the forward pass of batch {i}"
                )
            z = state.pop("z")
            yield z, _select_scores(output, targets, z, i, name)

    flags = [(m, m.training) for m in model.modules()]
    handle = module.register_forward_hook(hook)
    try:
        model.eval()
        yield generate()
    finally:
        state["open"] = False
        handle.remove()
        for m, training in flags:
            m.training = training


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
