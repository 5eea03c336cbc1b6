"""Fit the default SRAE on a disk-backed store in a fresh process and report
its time, peak memory and held-out R².

Usage:

- ``python _store_fit_probe.py write N D FOLDER`` writes an ``N x D``
  float32 store (:func:`write_store`);
- ``python _store_fit_probe.py fit FOLDER [DEVICE]`` runs
  ``fit_srae(ActivationStore(FOLDER), config=SRAEConfig(), show_progress=False,
  device=DEVICE)`` (DEVICE default ``cpu``)
  and prints one JSON line: ``fit_s`` (wall seconds of the fit), ``val_r2``,
  ``peak_rss_mib`` (``ru_maxrss``: with the pages of the mapped shards the
  fit has read, file cache the kernel drops under memory pressure) and
  ``peak_anon_mib`` (the largest ``RssAnon`` of ``/proc/self/status``
  sampled every 5 ms: the memory the process itself allocated).
"""

from __future__ import annotations

import json
import resource
import sys
import threading
import time
from collections.abc import Iterator

import torch

from captum_srae import SRAEConfig, fit_srae
from captum_srae.activations.store import ActivationStore, write_activations_to_disk

#: rows generated (and written) at a time
CHUNK = 10_000
#: latent factors behind the activations
FACTORS = 6


def chunks(n: int, dim: int, seed: int = 0) -> Iterator[tuple[torch.Tensor, ...]]:
    """``n`` rows of ``z = relu(f @ mix + noise)`` with ``FACTORS`` uniform
    latent factors ``f`` and a fixed random mixing, and the score
    ``y = sin(3 f0) + f1 f2 + 0.5 f3``, ``CHUNK`` rows at a time."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(FACTORS, dim, generator=g) / FACTORS**0.5
    for start in range(0, n, CHUNK):
        b = min(CHUNK, n - start)
        f = torch.rand(b, FACTORS, generator=g) * 2 - 1
        z = torch.relu(f @ mix + 0.05 * torch.randn(b, dim, generator=g))
        y = torch.sin(3 * f[:, 0]) + f[:, 1] * f[:, 2] + 0.5 * f[:, 3]
        yield z, y


def write_store(n: int, dim: int, folder: str) -> ActivationStore:
    """Write the ``n x dim`` store of :func:`chunks` to ``folder``."""
    return write_activations_to_disk(chunks(n, dim), folder, shard_size=16_384)


def anon_mib() -> float:
    """This process's anonymous resident memory (MiB), 0 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def fit(folder: str, device: str = "cpu") -> dict:
    """Fit with the defaults and measure (see the module docstring)."""
    peak, done = [anon_mib()], threading.Event()

    def watch() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], anon_mib())

    threading.Thread(target=watch, daemon=True).start()
    store = ActivationStore(folder)
    if torch.device(device).type == "cuda":  # CUDA's start-up is not timed
        torch.zeros(1, device=device)
        torch.cuda.synchronize()
    start = time.perf_counter()
    _, history = fit_srae(
        store, config=SRAEConfig(), show_progress=False, device=device
    )
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    done.set()
    cuda = torch.device(device).type == "cuda"
    gpu_mib = torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0
    return {
        "rows": len(store),
        "device": device,
        "dim": store.dim,
        "fit_s": seconds,
        "val_r2": history.val_r2,
        "accepted": history.accepted,
        "epochs": [r.epochs for r in history.rounds],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_anon_mib": peak[0],
        "peak_gpu_mib": gpu_mib,
    }


def main() -> None:
    if sys.argv[1] == "write":
        n, dim, folder = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        store = write_store(n, dim, folder)
        print(json.dumps({"rows": len(store), "dim": store.dim}))
    else:
        print(json.dumps(fit(*sys.argv[2:4])))


if __name__ == "__main__":
    main()
