"""The HTML report: its files, and the page in a real headless browser.

The browser test uses Debian's ``chromium`` (``apt-get install -y chromium``,
which ``.ci/run`` does); it is skipped, saying why, only where no chromium
executable can be found.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from captum_srae import TrainingHistory
from captum_srae.visualization import (
    ConceptGalleryDisplay,
    ExplanationDisplay,
    ExplanationGridDisplay,
    FaithfulnessDisplay,
    TrainingCurvesDisplay,
    write_report,
)

METRICS = {
    "val_r2": 0.97,
    "n_concepts": 3,
    "faithful": True,
    "extra": {"nan": float("nan")},
}


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def tags(page: Path) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.tags


@pytest.fixture
def report(explanation, tmp_path) -> Path:
    ex, images = explanation
    epochs = [
        {"round": 0, "epoch": e, "total": 1.0 / e, "prediction": 0.5 / e, "val_r2": 0.9}
        for e in range(1, 4)
    ]
    return write_report(
        tmp_path / "report",
        explanation_figures=[
            ExplanationDisplay.from_explanation(ex, images, 0),
            ExplanationGridDisplay.from_explanation(ex, images).plot().figure_,
        ],
        gallery=ConceptGalleryDisplay.from_explanation(ex, images, k=2),
        curves=TrainingCurvesDisplay.from_history(TrainingHistory(epochs=epochs)),
        scatter=FaithfulnessDisplay.from_explanation(ex),
        metrics=METRICS,
    )


def test_report_files_are_complete_and_self_contained(report: Path) -> None:
    folder = report.parent
    assert report.name == "index.html"
    found = tags(report)
    images = [a for t, a in found if t == "img"]
    assert len(images) == 5
    for attrs in images:
        src = attrs["src"]
        assert src and "/" not in src and ":" not in src
        with Image.open(folder / src) as png:
            assert png.format == "PNG"
            assert png.size == (int(attrs["width"]), int(attrs["height"]))
    assert not [t for t, _ in found if t in ("script", "link", "iframe")]
    text = report.read_text(encoding="utf-8")
    assert "http" not in text and "url(" not in text and "<style>" in text
    assert "val_r2" in text and "0.97" in text
    assert json.loads((folder / "metrics.json").read_text()) == {
        **METRICS,
        "extra": {"nan": None},
    }
    assert sorted(p.name for p in folder.iterdir()) == [
        "curves.png",
        "explanation_0.png",
        "explanation_1.png",
        "faithfulness.png",
        "gallery.png",
        "index.html",
        "metrics.json",
    ]


def test_report_is_replaced_atomically(report: Path) -> None:
    folder = report.parent
    again = write_report(folder, metrics={"only": 1})
    assert again == report
    assert sorted(p.name for p in folder.iterdir()) == ["index.html", "metrics.json"]
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".")] == []


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def _run_chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)


PROBE = """<!DOCTYPE html><html><body>{imgs}<script>
window.addEventListener("load", function () {{
  var out = [];
  document.querySelectorAll("img").forEach(function (im) {{
    out.push([im.getAttribute("src"), im.naturalWidth, im.naturalHeight]);
  }});
  var pre = document.createElement("pre");
  pre.id = "decoded";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}});
</script></body></html>"""


def test_report_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium not found (Debian: apt-get install -y chromium)")
    folder = report.parent
    # 1. the page renders: a screenshot that is not blank
    shot = tmp_path / "shot.png"
    res = _run_chromium(
        exe,
        tmp_path / "profile1",
        f"--screenshot={shot}",
        "--window-size=1200,900",
        report.as_uri(),
    )
    assert shot.exists(), res.stderr[-2000:]
    with Image.open(shot) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape == (900, 1200, 3)
    assert pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    # 2. every image of the report decodes: a probe page next to index.html
    #    loads the same files and writes their natural sizes into the DOM
    srcs = [a["src"] for t, a in tags(report) if t == "img"]
    probe = folder / "probe.html"
    probe.write_text(PROBE.format(imgs="".join(f'<img src="{s}">' for s in srcs)))
    res = _run_chromium(
        exe,
        tmp_path / "profile2",
        "--virtual-time-budget=10000",
        "--dump-dom",
        probe.as_uri(),
    )
    start = res.stdout.find('<pre id="decoded">')
    assert start >= 0, (res.stdout[-1000:], res.stderr[-2000:])
    body = res.stdout[start + len('<pre id="decoded">') :]
    decoded = json.loads(body[: body.index("</pre>")])
    assert [d[0] for d in decoded] == srcs
    for src, width, height in decoded:
        with Image.open(folder / src) as png:
            assert (width, height) == png.size and width > 0, src


def test_report_tables_and_sections(explanation, tmp_path: Path) -> None:
    import csv

    ex, images = explanation
    rows = [
        {"method": "SRAE", "r2": 0.987654, "note": None},
        {"method": "P|CA", "r2": 0.5, "note": "a|b"},
    ]
    extra = FaithfulnessDisplay.from_explanation(ex).plot().figure_
    page = write_report(
        tmp_path / "r",
        tables={"Comparison": rows, "Empty": []},
        sections=[("More", [extra, ExplanationDisplay.from_explanation(ex, images)])],
        intro="An intro <with> markup.",
    )
    text = page.read_text(encoding="utf-8")
    assert "<p>An intro &lt;with&gt; markup.</p>" in text
    assert "<h2>Comparison</h2>" in text and "<h2>More</h2>" in text
    srcs = [a["src"] for t, a in tags(page) if t == "img"]
    assert srcs == ["section0_0.png", "section0_1.png"]
    assert all((page.parent / s).is_file() for s in srcs)
    with open(page.parent / "table_0.csv", newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == [
            ["method", "r2", "note"],
            ["SRAE", "0.987654", ""],
            ["P|CA", "0.5", "a|b"],
        ]
    md = (page.parent / "table_0.md").read_text(encoding="utf-8").splitlines()
    assert md == [
        "| method | r2 | note |",
        "| --- | --- | --- |",
        "| SRAE | 0.9877 | n/a |",
        "| P\\|CA | 0.5 | a\\|b |",
    ]
    assert (page.parent / "table_1.csv").read_text(encoding="utf-8") == "\n"
    cells = [a for t, a in tags(page) if t == "td"]
    assert len(cells) == 6  # two rows of three cells in the first table
