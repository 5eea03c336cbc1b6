"""Turn a pytest-benchmark JSON file into the results table of
``docs/performance.rst``.

Usage::

    OMP_NUM_THREADS=1 python -m pytest tests/benchmarks --benchmark-only \
        --benchmark-json=bench.json
    python tests/benchmarks/report.py bench.json --write docs/performance.rst \
        --plot docs/_static/fit_time_vs_n.png

Every ratio divides two times of the same run (the fastest round of each,
the least disturbed by other processes); the table also gives the absolute
times and the machine. ``--write`` replaces the text between the
``.. results-start`` and ``.. results-end`` lines of the file; ``--plot``
saves the time of the default fit against the number of rows (the
``test_c_fit_time_vs_n`` benchmark) as a PNG.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

DEFAULT_FIT = "test_c_fit_srae_default"
SCALING = "test_c_fit_time_vs_n"
SIDE_BY_SIDE = "test_c_acceptance_side_by_side"


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
    out.extend(fit_rows(bench))
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


def fmt_n(n: int) -> str:
    """20000 -> "20 000"."""
    return f"{n:,}".replace(",", " ")


def info_of(bench: dict[str, dict], name: str) -> dict:
    return bench.get(name, {}).get("extra_info", {})


def scaling(bench: dict[str, dict]) -> list[tuple[int, float, dict]]:
    """(N, seconds, extra_info) of the fit-time-vs-N benchmark, by N."""
    found = []
    for name, b in bench.items():
        if name.startswith(SCALING + "["):
            info = b.get("extra_info", {})
            n = int(info.get("n", name[len(SCALING) + 1 : -1]))
            found.append((n, float(b["stats"]["min"]), info))
    return sorted(found, key=lambda t: t[0])


def fit_rows(bench: dict[str, dict]) -> list[tuple[str, ...]]:
    """The (c) rows: the default fit against NMF(5) and PCA(5), the fit time
    as N grows, and the acceptance rule of the new and old defaults."""
    out: list[tuple[str, ...]] = []
    nan = float("nan")
    fit_b = bench.get(DEFAULT_FIT)
    if fit_b is not None:
        fit = float(fit_b["stats"]["min"])
        info = fit_b["extra_info"]
        size = f"{fmt_n(info.get('n', 20000))} × {info.get('dim', 512)}"
        verdict = "accepted" if info.get("accepted") else "**not accepted**"
        what = (
            f"(c) default ``fit_srae``, {size}, 5 x-features (R² "
            f"{info.get('test_r2', nan):.4f} on {fmt_n(info.get('test_rows', 0))} "
            f"unseen rows, {info.get('val_r2', nan):.4f} on the validation "
            f"split; {verdict}; epochs per round {info.get('rounds', [])})"
        )
        for name, label in (
            ("test_c_sklearn_nmf5", "NMF(5)"),
            ("test_c_sklearn_pca5", "PCA(5)"),
        ):
            base = bench.get(name)
            if base is None:
                continue
            base_s = float(base["stats"]["min"])
            out.append(
                (
                    what,
                    fmt_s(fit),
                    f"scikit-learn {label}: {fmt_s(base_s)}",
                    f"{fit / base_s:.1f}",
                    "≤ 20 s, R² ≥ 0.98",
                )
            )
    curve = scaling(bench)
    if curve:
        ref = next(((n, t) for n, t, _ in curve if n == 20000), None)
        if ref is None and fit_b is not None:
            ref = (int(fit_b["extra_info"].get("n", 0)), float(fit_b["stats"]["min"]))
        if ref is None:
            ref = curve[0][:2]
        for n, seconds, info in curve:
            out.append(
                (
                    f"(c) default ``fit_srae``, N = {fmt_n(n)} × "
                    f"{info.get('dim', 512)} (held-out R² "
                    f"{info.get('val_r2', nan):.4f}; epochs per round "
                    f"{info.get('rounds', [])})",
                    fmt_s(seconds),
                    f"N = {fmt_n(ref[0])}: {fmt_s(ref[1])}",
                    f"{seconds / ref[1]:.2f}",
                    "flat once N exceeds the budget",
                )
            )
    side = info_of(bench, SIDE_BY_SIDE)
    runs = side.get("runs", [])
    if runs:

        def summary(label: str) -> tuple[int, int, float, float]:
            mine = [r for r in runs if r["config"] == label]
            if not mine:
                return 0, 0, nan, nan
            return (
                sum(bool(r["accepted"]) for r in mine),
                len(mine),
                sum(r["seconds"] for r in mine) / len(mine),
                sum(r["test_r2"] for r in mine) / len(mine),
            )

        a, b, t_new, r2_new = summary("new")
        c, b_old, t_old, r2_old = summary("old")
        seeds = ", ".join(str(s) for s in side.get("seeds", []))
        size = f"{fmt_n(side.get('n', 20000))} × {side.get('dim', 512)}"
        out.append(
            (
                f"(c) acceptance rule, new vs old defaults, {size}, seeds "
                f"{seeds}: accepted in {a}/{b} fits (new defaults, mean "
                f"{fmt_s(t_new)}, mean test R² {r2_new:.4f})",
                fmt_s(t_new),
                f"{c}/{b_old} (old defaults, mean {fmt_s(t_old)}, mean test R² "
                f"{r2_old:.4f})",
                f"{t_new / t_old:.2f}",
                "accepted as often as the old defaults",
            )
        )
    return out


def fit_threads(bench: dict[str, dict]) -> list[int]:
    """Torch threads recorded by the (c) fit benchmarks."""
    found = set()
    for name, b in bench.items():
        if name.startswith((DEFAULT_FIT, SIDE_BY_SIDE, SCALING + "[")):
            t = b.get("extra_info", {}).get("torch_threads")
            if t is not None:
                found.add(int(t))
    return sorted(found)


def plot(bench: dict[str, dict], path: str) -> None:
    """Save a PNG of the default fit's time against N (log x axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = scaling(bench)
    if not curve:
        raise SystemExit(f"no {SCALING} results to plot")
    ns = [n for n, _, _ in curve]
    secs = [t for _, t, _ in curve]
    info = curve[0][2]
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    ax.plot(ns, secs, "o-", color="tab:blue")
    for n, t, inf in curve:
        ax.annotate(
            f"R² {inf.get('val_r2', float('nan')):.3f}",
            (n, t),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    budget, frac = info.get("epoch_samples"), info.get("val_fraction")
    if budget and frac is not None and ns[0] <= budget / (1 - frac) <= ns[-1]:
        ax.axvline(
            budget / (1 - frac),
            color="grey",
            linestyle=":",
            label=f"training rows = epoch budget ({fmt_n(budget)})",
        )
        ax.legend(loc="upper left", fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(ns)
    ax.set_xticklabels([fmt_n(n) for n in ns])
    ax.minorticks_off()
    ax.set_ylim(0, max(secs) * 1.25)
    ax.set_xlabel(f"rows N (× {info.get('dim', 512)} activations)")
    ax.set_ylabel("fit time (s)")
    threads = info.get("torch_threads", "?")
    ax.set_title(f"Default fit_srae, 5 x-features, CPU, {threads} threads")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def machine(info: dict, fit_threads: list[int] | None = None) -> str:
    text = (
        f"{info.get('cpu_model', '?')}, {info.get('nproc', '?')} logical CPUs "
        f"(``nproc``), torch {info.get('torch_version', '?')} "
        f"({info.get('torch_threads', '?')} thread(s) by default), Python "
        f"{info.get('python_version', '?')}"
    )
    if fit_threads:
        n = " or ".join(str(t) for t in fit_threads)
        text += (
            f"; the fit benchmarks (c) use {n} torch thread(s) "
            "(``torch.set_num_threads``), scikit-learn the same number"
        )
    return text


def table(paths: list[str]) -> str:
    bench, info = load(paths)
    header = ("Measurement", "Time / value", "Baseline (same run)", "Ratio", "Target")
    body = rows(bench)
    lines = [
        f"Machine: {machine(info, fit_threads(bench))}.",
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
    parser.add_argument(
        "--plot", metavar="PATH", help="save the fit time against N as a PNG"
    )
    args = parser.parse_args(argv)
    if args.plot:
        plot(load(args.json)[0], args.plot)
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
