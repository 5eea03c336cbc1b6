"""(d) Activation collection throughput next to a plain forward pass over the
same DataLoader; (e) peak memory of the disk-backed collection for 5 000 and
50 000 images (each in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from _interleave import interleaved  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset

from captum_srae import collect_activations
from captum_srae.activations.store import collect_activations_to_disk
from captum_srae.datasets.models import SmallCNN

N_IMAGES = 4096


@pytest.fixture(scope="module")
def loader():
    torch.manual_seed(0)
    x = torch.rand(N_IMAGES, 3, 32, 32)
    y = torch.zeros(N_IMAGES, dtype=torch.long)
    return SmallCNN().eval(), DataLoader(TensorDataset(x, y), batch_size=128)


@pytest.mark.benchmark(group="d: collection, 4096 images 32x32, SmallCNN")
def test_d_collection_vs_plain_forward(benchmark, loader, tmp_path_factory) -> None:
    net, data = loader
    roots = iter(range(10**6))

    def plain():
        with torch.no_grad():
            for x, _ in data:
                net(x)

    def to_disk():
        folder = tmp_path_factory.mktemp(f"store{next(roots)}")
        collect_activations_to_disk(net, "conv3", data, folder, target=0)

    interleaved(
        benchmark,
        {
            "plain_forward": plain,
            "collect_activations": lambda: collect_activations(
                net, "conv3", data, target=0
            ),
            "collect_to_disk": to_disk,
        },
        rounds=15,  # the 5 % target needs many rounds on a noisy 2-core machine
    )
    benchmark.extra_info["images"] = N_IMAGES


def probe(n: int, mode: str, folder) -> dict:
    script = os.path.join(os.path.dirname(__file__), "_memory_probe.py")
    out = subprocess.run(
        [sys.executable, script, str(n), mode, str(folder)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["disk", "memory"])
@pytest.mark.benchmark(group="e: peak RSS, 5000 vs 50000 images")
def test_e_peak_memory(benchmark, mode, tmp_path) -> None:
    results = {}

    def measure():
        for n in (5_000, 50_000):
            results[n] = probe(n, mode, tmp_path / f"{mode}{n}")

    benchmark.pedantic(measure, rounds=1, iterations=1)
    small, large = results[5_000]["peak_rss_mib"], results[50_000]["peak_rss_mib"]
    benchmark.extra_info.update(
        peak_rss_mib_5000=small, peak_rss_mib_50000=large, growth=large / small - 1
    )
    assert results[50_000]["rows"] == 50_000
