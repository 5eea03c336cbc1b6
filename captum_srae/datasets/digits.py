"""scikit-learn's handwritten digits, upsampled to RGB images.

A small real (non-synthetic) data set that ships with scikit-learn, so no
download is needed: 1797 greyscale 8×8 images of the digits 0 to 9.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset

from captum_srae.utils.validation import check_int

__all__ = ["load_digits_dataset", "load_digits_tensors", "train_test_split_indices"]


def load_digits_tensors(size: int = 32) -> tuple[Tensor, Tensor]:
    """The digits as RGB images ``(1797, 3, size, size)`` and labels ``(1797,)``.

    The 8×8 images (values 0 to 16) are scaled to ``[0, 1]``, upsampled with
    bilinear interpolation to ``size`` × ``size`` and repeated over three
    channels.

    Args:
        size (int, optional): Height and width in pixels, at least 8.
            Default: 32

    Returns:
        *tuple[Tensor, Tensor]*: float32 images in ``[0, 1]`` and int64 labels
        in ``0..9``.

    Raises:
        TypeError: if ``size`` is not an int.
        ValueError: if ``size < 8``.

    Examples::

        >>> from captum_srae.datasets import load_digits_tensors
        >>> x, y = load_digits_tensors(size=16)
        >>> x.shape, y.shape
        (torch.Size([1797, 3, 16, 16]), torch.Size([1797]))
    """
    check_int(size, "size", minimum=8)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)) / 16.0
    images = images[:, None]
    if size != 8:
        images = F.interpolate(
            images, size=(size, size), mode="bilinear", align_corners=False
        )
    images = images.clamp_(0.0, 1.0).repeat(1, 3, 1, 1).contiguous()
    labels = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return images, labels


def train_test_split_indices(
    n: int, test_fraction: float = 0.25, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """A deterministic random split of ``range(n)`` into train and test indices.

    Args:
        n (int): Number of items, at least 2.
        test_fraction (float, optional): Fraction in ``(0, 1)`` of items in the
            test part (rounded, at least one item in each part). Default: 0.25
        seed (int, optional): Seed of the permutation. Default: 0

    Returns:
        *tuple[Tensor, Tensor]*: sorted int64 train and test indices.

    Raises:
        ValueError: if ``n < 2`` or ``test_fraction`` is not in ``(0, 1)``.

    Examples::

        >>> train, test = train_test_split_indices(8, 0.25, seed=0)
        >>> len(train), len(test)
        (6, 2)
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = min(max(round(n * test_fraction), 1), n - 1)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values


def load_digits_dataset(
    size: int = 32, seed: int = 0, test_fraction: float = 0.25
) -> tuple[TensorDataset, TensorDataset]:
    """Train and test ``TensorDataset`` s of the upsampled digits.

    Items are ``(image, label)``; see :func:`load_digits_tensors` for the
    images and :func:`train_test_split_indices` for the split, which is the
    same for the same ``seed`` and ``test_fraction``.

    Args:
        size (int, optional): Height and width in pixels. Default: 32
        seed (int, optional): Seed of the split. Default: 0
        test_fraction (float, optional): Fraction of test images. Default: 0.25

    Returns:
        *tuple[TensorDataset, TensorDataset]*: the train and test sets.

    Examples::

        >>> from captum_srae.datasets import load_digits_dataset
        >>> train, test = load_digits_dataset(size=16)
        >>> len(train), len(test)
        (1348, 449)
    """
    images, labels = load_digits_tensors(size)
    train, test = train_test_split_indices(len(labels), test_fraction, seed)
    return (
        TensorDataset(images[train], labels[train]),
        TensorDataset(images[test], labels[test]),
    )
