"""Tests of the digits and image-folder data sets (captum_srae.datasets)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from captum_srae.datasets import (
    image_folder_dataset,
    load_digits_dataset,
    load_digits_tensors,
    train_test_split_indices,
)


def test_digits_tensors() -> None:
    x, y = load_digits_tensors(size=16)
    assert x.shape == (1797, 3, 16, 16) and x.dtype == torch.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.9
    assert torch.equal(x[:, 0], x[:, 2])
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    x8, _ = load_digits_tensors(size=8)
    assert x8.shape == (1797, 3, 8, 8)


def test_digits_dataset_split_is_deterministic() -> None:
    train, test = load_digits_dataset(size=12, seed=1)
    assert len(train) + len(test) == 1797 and len(test) == 449
    image, label = train[0]
    assert image.shape == (3, 12, 12) and 0 <= int(label) <= 9
    again_train, _ = load_digits_dataset(size=12, seed=1)
    assert torch.equal(train.tensors[0], again_train.tensors[0])
    other_train, _ = load_digits_dataset(size=12, seed=2)
    assert not torch.equal(train.tensors[1], other_train.tensors[1])


def test_split_indices() -> None:
    train, test = train_test_split_indices(100, 0.2, seed=5)
    assert len(train) == 80 and len(test) == 20
    assert sorted(torch.cat([train, test]).tolist()) == list(range(100))
    assert torch.equal(test, train_test_split_indices(100, 0.2, seed=5)[1])
    with pytest.raises(ValueError):
        train_test_split_indices(1)
    with pytest.raises(ValueError):
        train_test_split_indices(10, 1.0)


def test_digits_bad_size() -> None:
    with pytest.raises(ValueError):
        load_digits_tensors(size=4)
    with pytest.raises(TypeError):
        load_digits_tensors(size=16.0)  # type: ignore[arg-type]


def _make_folder(root: Path) -> Path:
    from PIL import Image

    for c, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(3):
            image = Image.new("RGB", (40 + 5 * i, 30), (80 * c, 20 * i, 200))
            image.save(root / name / f"{i}.png")
    return root


def test_image_folder(tmp_path: Path) -> None:
    root = _make_folder(tmp_path / "data")
    ds = image_folder_dataset(root, size=32)
    assert len(ds) == 6
    assert ds.class_to_idx == {"cat": 0, "dog": 1}
    image, label = ds[4]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == 1
    train = image_folder_dataset(str(root), size=24, train=True)
    assert train[0][0].shape == (3, 24, 24)
    # Normalised with the ImageNet statistics: a blue-ish image has high blue.
    assert image[2].mean() > 1.0


def test_image_folder_errors(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match="missing.*does not exist"):
        image_folder_dataset(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="empty.*is empty"):
        image_folder_dataset(empty)
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="flat.*no class subfolders"):
        image_folder_dataset(flat)
    no_images = tmp_path / "no_images"
    (no_images / "cat").mkdir(parents=True)
    (no_images / "cat" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="no images found.*no_images"):
        image_folder_dataset(no_images)
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"")
    with pytest.raises(ValueError, match="not a folder"):
        image_folder_dataset(a_file)
