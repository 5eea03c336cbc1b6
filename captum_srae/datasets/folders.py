"""Image folders of the user's own data, through torchvision's ``ImageFolder``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from captum_srae.utils.validation import check_int

if TYPE_CHECKING:  # torchvision is imported on use: it takes a second to load
    from torchvision import datasets, transforms

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "image_folder_dataset", "image_transform"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel mean of ImageNet, used by torchvision's pretrained models."""

IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel standard deviation of ImageNet."""


def image_transform(
    size: int = 224, train: bool = False, normalize: bool = True
) -> transforms.Compose:
    """The usual ImageNet-style transform of a PIL image to a normalised tensor.

    Evaluation: resize the short side to ``size * 256 / 224``, centre-crop
    ``size``; training: random resized crop of ``size`` and horizontal flip.
    Both then convert to a tensor (``ImageFolder`` has already converted
    the image to RGB) and normalise with the ImageNet statistics.

    Args:
        size (int, optional): Output height and width. Default: 224
        train (bool, optional): Use the random training augmentation.
            Default: False
        normalize (bool, optional): Normalise with the ImageNet statistics;
            False keeps pixels in ``[0, 1]`` (for models trained on raw
            pixels). Default: True

    Returns:
        *transforms.Compose*: the transform.

    Raises:
        TypeError: if ``size`` is not an int.
        ValueError: if ``size < 1``.

    Examples::

        >>> t = image_transform(64)
        >>> type(t).__name__
        'Compose'
    """
    check_int(size, "size")
    from torchvision import transforms

    last = [transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)] if normalize else []
    if train:
        steps: list[object] = [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(),
        ]
    else:
        steps = [
            transforms.Resize(round(size * 256 / 224)),
            transforms.CenterCrop(size),
        ]
    return transforms.Compose([*steps, transforms.ToTensor(), *last])


def image_folder_dataset(
    root: str | Path, size: int = 224, train: bool = False, normalize: bool = True
) -> datasets.ImageFolder:
    """Load ``root/<class>/<image>`` files with torchvision's ``ImageFolder``.

    Class indices follow the sorted names of the subfolders
    (``dataset.class_to_idx``). Images are transformed by
    :func:`image_transform`.

    Args:
        root (str | Path): Folder with one subfolder of images per class.
        size (int, optional): Output height and width. Default: 224
        train (bool, optional): Use the random training augmentation.
            Default: False
        normalize (bool, optional): See :func:`image_transform`.
            Default: True

    Returns:
        *datasets.ImageFolder*: items ``(image, label)``, the image a float
        tensor ``(3, size, size)``.

    Raises:
        ValueError: if ``root`` is missing, not a folder, empty, or has no
            class subfolder with images (the message names ``root``).

    Examples::

        >>> ds = image_folder_dataset("my_images", size=224)  # doctest: +SKIP
        >>> ds.class_to_idx  # doctest: +SKIP
        {'cat': 0, 'dog': 1}
    """
    path = Path(root)
    if not path.exists():
        raise ValueError(f"image folder {str(root)!r} does not exist")
    if not path.is_dir():
        raise ValueError(f"image folder {str(root)!r} is not a folder")
    if not any(path.iterdir()):
        raise ValueError(f"image folder {str(root)!r} is empty")
    if not any(p.is_dir() for p in path.iterdir()):
        raise ValueError(
            f"image folder {str(root)!r} has no class subfolders "
            "(expected root/<class>/<image>)"
        )
    from torchvision import datasets

    transform = image_transform(size, train, normalize)
    try:
        return datasets.ImageFolder(str(path), transform=transform)
    except FileNotFoundError as error:
        raise ValueError(
            f"no images found in image folder {str(root)!r}: {error}"
        ) from None
