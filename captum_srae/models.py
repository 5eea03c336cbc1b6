"""A small image classifier and its training loop, for the demo's data.

:class:`SmallCNN` classifies the images of
:func:`~captum_srae.datasets.make_shapes_dataset`; :func:`train_classifier`
trains it with Adam and a cosine learning-rate schedule, reproducibly for a
given seed, and :func:`accuracy` evaluates it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

__all__ = ["SmallCNN", "accuracy", "train_classifier"]


class SmallCNN(nn.Module):
    r"""A small CNN (25,796 parameters) for the images of the demo.

    It classifies the images of
    :func:`~captum_srae.datasets.make_shapes_dataset` with three convolutional
    blocks, a global average pooling and a small MLP head:

    - ``conv1``: ``Conv2d(3, 16, 3) -> ReLU -> MaxPool2d(2)``;
    - ``conv2``: ``Conv2d(16, 32, 3) -> ReLU -> MaxPool2d(2)``;
    - ``conv3``: ``Conv2d(32, 64, 3) -> ReLU``, the layer the demo explains;
    - ``pool``: ``AdaptiveAvgPool2d(1)``;
    - ``fc``: ``Linear(64, 32) -> ReLU -> Linear(32, n_classes)``.

    (Widths for ``width=16``.) Because of the hidden layer of ``fc``, a class
    score is a nonlinear function of the pooled ``conv3`` activations, as it
    is for a layer deeper inside a large network.

    Args:
        n_classes (int, optional): Number of outputs. Default: 4
        width (int, optional): Channels of ``conv1``; ``conv2`` and ``conv3``
            have twice and four times as many, the hidden layer of ``fc``
            twice as many. Default: 16

    Examples::

        >>> import torch
        >>> from captum_srae.models import SmallCNN
        >>> SmallCNN()(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 4])
    """

    def __init__(self, n_classes: int = 4, width: int = 16) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.conv3 = nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(4 * w, 2 * w), nn.ReLU(), nn.Linear(2 * w, n_classes)
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) ``(N, n_classes)`` of images ``(N, 3, H, W)``."""
        h = self.conv3(self.conv2(self.conv1(x)))
        return self.fc(self.pool(h).flatten(1))


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> float:
    """Fraction of ``x`` that ``model`` (in eval mode, no grad) classifies as ``y``.

    The model's ``training`` flag is restored afterwards.
    """
    was_training = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            pred = model(x[i : i + batch_size]).argmax(dim=1)
            correct += int((pred == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / x.shape[0]


def train_classifier(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    epochs: int,
    seed: int = 0,
    show_progress: bool = True,
    *,
    lr: float = 5e-3,
    batch_size: int = 64,
) -> float:
    r"""Train ``model`` on ``(x, y)`` with Adam and the cross-entropy loss.

    Mini-batches of ``batch_size`` are shuffled by a ``torch.Generator`` seeded
    with ``seed``; the learning rate follows a cosine schedule from ``lr`` to
    zero over all steps. The model is trained in place and left in eval mode.

    Args:
        model (nn.Module): The classifier, returning ``(N, C)`` logits.
        x (Tensor): Training images ``(N, ...)``.
        y (Tensor): Integer labels ``(N,)``.
        epochs (int): Passes over the data, at least 1.
        seed (int, optional): Seed of the shuffling. Default: 0
        show_progress (bool, optional): Show a ``tqdm`` bar over the epochs.
            Default: True
        lr (float, optional): Initial learning rate. Default: 5e-3
        batch_size (int, optional): Mini-batch size. Default: 64

    Returns:
        float: the **training** accuracy after the last epoch (measured in eval
        mode on all of ``(x, y)``); evaluate held-out data with
        :func:`accuracy`.

    Raises:
        ValueError: if ``epochs < 1``, ``batch_size < 1`` or ``x`` and ``y``
            differ in length.

    Examples::

        >>> from captum_srae.datasets import make_shapes_dataset
        >>> from captum_srae.models import SmallCNN, train_classifier
        >>> x, y = make_shapes_dataset(256)
        >>> acc = train_classifier(SmallCNN(), x, y, epochs=1, show_progress=False)
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"x and y must have the same length, got {x.shape[0]} and {y.shape[0]}"
        )
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * -(-x.shape[0] // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    bar = tqdm(range(epochs), desc="Training CNN", disable=not show_progress)
    for _ in bar:
        total, correct = 0.0, 0
        for idx in torch.randperm(x.shape[0], generator=gen).split(batch_size):
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
            correct += int((logits.argmax(dim=1) == y[idx]).sum())
        bar.set_postfix(
            loss=f"{total / x.shape[0]:.3f}", acc=f"{correct / x.shape[0]:.3f}"
        )
    bar.close()
    model.eval()
    return accuracy(model, x, y)
