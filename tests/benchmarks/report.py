"""Turn a pytest-benchmark JSON file into the results table of
``docs/performance.rst``.

Usage::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks --benchmark-only \
        --benchmark-json=bench.json
    python tests/benchmarks/report.py bench.json --write docs/performance.rst

Every ratio divides two times of the same run (the fastest round of each,
the least disturbed by other processes); the table also gives the absolute
times and the machine. ``--write`` replaces the text between the
``.. results-start`` and ``.. results-end`` lines of the file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys


def load(paths: list[str]) -> tuple[dict[str, dict], dict]:
    """Benchmarks by name from one or more JSON files (later files win)."""
    by_name: dict[str, dict] = {}
    info: dict = {}
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        by_name.update({b["name"]: b for b in doc["benchmarks"]})
        info = info or doc.get("machine_info", {})
    return by_name, info


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def rows(bench: dict[str, dict]) -> list[tuple[str, ...]]:
    """(item, measured, baseline, ratio, target) rows for the benchmarks found."""
    out: list[tuple[str, ...]] = []

    def times(name: str) -> dict[str, float]:
        """Fastest round of each interleaved function of benchmark ``name``."""
        b = bench.get(name)
        if b is None:
            return {}
        return {k: min(v) for k, v in b["extra_info"].get("times", {}).items()}

    def one(name: str) -> float | None:
        b = bench.get(name)
        return None if b is None else float(b["stats"]["min"])

    a = times("test_a_attribute_vs_gradcam_vs_forward")
    if a:
        what = "(a) ``attribute()``, 5 Grad-CAM x-feature maps, ResNet-18 "
        what += "``layer4``, batch 16, 224×224"
        for key, label in (
            ("srae_attribute_5_maps", "upsampled to 224×224"),
            ("srae_attribute_5_maps_layer_size", "``interpolate='layer'`` (7×7)"),
        ):
            att = a[key]
            cam, fwd = a["layergradcam_one_class"], a["forward_no_grad"]
            out.append(
                (
                    f"{what}, {label}",
                    fmt_s(att),
                    f"LayerGradCam, 1 class: {fmt_s(cam)}",
                    f"{att / cam:.2f}",
                    "≤ 0.9",
                )
            )
            out.append(
                (
                    f"{what}, {label}",
                    fmt_s(att),
                    f"plain ``no_grad`` forward: {fmt_s(fwd)}",
                    f"{att / fwd:.2f}",
                    "≤ 1.1",
                )
            )
    b = times("test_b_ig_batched_vs_loop")
    if b:
        out.append(
            (
                "(b) IntegratedGradients maps of 5 x-features (16 steps, "
                "ResNet-18 to ``layer4``, batch 4, 64×64), batched",
                fmt_s(b["ig_batched"]),
                f"one IG call per x-feature: {fmt_s(b['ig_loop'])}",
                f"{b['ig_batched'] / b['ig_loop']:.2f}",
                "≤ 0.8",
            )
        )
    fit = one("test_c_fit_srae_large_config")
    fit_info = bench.get("test_c_fit_srae_large_config", {}).get("extra_info", {})
    for name, label in (
        ("test_c_sklearn_nmf5", "NMF(5)"),
        ("test_c_sklearn_pca5", "PCA(5)"),
    ):
        base = one(name)
        if fit is not None and base is not None:
            r2 = fit_info.get("val_r2", float("nan"))
            out.append(
                (
                    "(c) ``fit_srae``, 20 000 × 512, 5 x-features, large-data "
                    f"config (held-out R² {r2:.4f})",
                    fmt_s(fit),
                    f"scikit-learn {label}: {fmt_s(base)}",
                    f"{fit / base:.1f}",
                    "< 20 s, R² ≥ 0.98",
                )
            )
    two = one("test_c_fit_srae_large_config_2_threads")
    if two is not None and fit is not None:
        info = bench["test_c_fit_srae_large_config_2_threads"]["extra_info"]
        out.append(
            (
                "(c) same, ``torch.set_num_threads(2)`` (held-out R² "
                f"{info.get('val_r2', float('nan')):.4f})",
                fmt_s(two),
                f"1 thread: {fmt_s(fit)}",
                f"{two / fit:.2f}",
                "< 20 s",
            )
        )
    default = one("test_c_fit_srae_default_config")
    if default is not None and fit is not None:
        info = bench["test_c_fit_srae_default_config"]["extra_info"]
        out.append(
            (
                "(c) ``fit_srae``, default config (held-out R² "
                f"{info.get('val_r2', float('nan')):.4f})",
                fmt_s(default),
                f"large-data config: {fmt_s(fit)}",
                f"{default / fit:.1f}",
                "",
            )
        )
    d = times("test_d_collection_vs_plain_forward")
    if d:
        n = bench["test_d_collection_vs_plain_forward"]["extra_info"].get("images", 0)
        plain = d["plain_forward"]
        for key, label in (
            ("collect_activations", "``collect_activations``"),
            ("collect_to_disk", "``collect_activations_to_disk``"),
        ):
            out.append(
                (
                    f"(d) {label}, {n} images 32×32, SmallCNN "
                    f"({n / d[key]:.0f} images/s)",
                    fmt_s(d[key]),
                    f"plain forward over the same DataLoader: {fmt_s(plain)} "
                    f"({n / plain:.0f} images/s)",
                    f"{d[key] / plain:.3f}",
                    "≤ 1.05",
                )
            )
    for mode, label in (("disk", "disk-backed"), ("memory", "in-memory")):
        e = bench.get(f"test_e_peak_memory[{mode}]")
        if e:
            info = e["extra_info"]
            out.append(
                (
                    f"(e) peak RSS, {label} collection, 50 000 images "
                    "(1024 floats each)",
                    f"{info['peak_rss_mib_50000']:.0f} MiB",
                    f"5 000 images: {info['peak_rss_mib_5000']:.0f} MiB",
                    f"{1 + info['growth']:.2f}",
                    "≤ 1.10" if mode == "disk" else "(for contrast)",
                )
            )
    return out


def machine(info: dict) -> str:
    return (
        f"{info.get('cpu_model', '?')}, {info.get('nproc', '?')} logical CPUs "
        f"(``nproc``), torch {info.get('torch_version', '?')} with "
        f"{info.get('torch_threads', '?')} thread(s), Python "
        f"{info.get('python_version', '?')}"
    )


def table(paths: list[str]) -> str:
    bench, info = load(paths)
    header = ("Measurement", "Time / value", "Baseline (same run)", "Ratio", "Target")
    body = rows(bench)
    lines = [
        f"Machine: {machine(info)}.",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
    ]
    for row in (header, *body):
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="file(s) written by --benchmark-json")
    parser.add_argument("--write", help="an .rst file with results markers")
    args = parser.parse_args(argv)
    text = table(args.json)
    if not args.write:
        sys.stdout.write(text)
        return 0
    with open(args.write) as f:
        doc = f.read()
    pattern = re.compile(r"(\.\. results-start\n).*?(\n\.\. results-end)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{args.write} has no '.. results-start' marker")
    doc = pattern.sub(lambda m: m.group(1) + "\n" + text + m.group(2), doc)
    with open(args.write, "w") as f:
        f.write(doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
