"""Peak RSS of collecting activations for N images (run in a fresh process).

Usage: ``python _memory_probe.py N {disk,memory} FOLDER``; prints one JSON
line with the peak resident set size in MiB. The images are generated batch
by batch, so the data set itself never sits in memory.
"""

from __future__ import annotations

import json
import resource
import sys

import torch

from captum_srae import collect_activations
from captum_srae.activations.store import collect_activations_to_disk
from captum_srae.datasets.models import SmallCNN


def batches(n: int, size: int = 250):
    g = torch.Generator().manual_seed(0)
    for start in range(0, n, size):
        yield (torch.rand(min(size, n - start), 3, 32, 32, generator=g),)


def main() -> None:
    n, mode, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    torch.manual_seed(0)
    net = SmallCNN().eval()
    # flattened conv3 activations: 1024 floats per image
    if mode == "disk":
        store = collect_activations_to_disk(
            net, "conv3", batches(n), folder, pooling="flatten", shard_size=4096
        )
        rows = len(store)
    else:
        z, _ = collect_activations(net, "conv3", batches(n), pooling="flatten")
        rows = z.shape[0]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"n": n, "mode": mode, "rows": rows, "peak_rss_mib": peak_kib / 1024}
        )
    )


if __name__ == "__main__":
    main()
