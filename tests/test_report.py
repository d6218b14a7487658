"""`ffbench report`: generated from the run files alone, the same bytes from the same runs."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ffbench
from ffbench.cli import app
from ffbench.report.document import HEADLINE, bootstrap_ci, headline_of, place, write

REFERENCE = Path(__file__).parents[1] / "runs" / "reference"
runner = CliRunner()


def test_the_committed_report_is_what_the_committed_runs_give(tmp_path):
    """`make report` regenerates runs/reference/report.md, report.html and report/*.png; any
    edit by hand, or a run changed without regenerating, shows here."""
    written, _ = write(REFERENCE, tmp_path)
    for path in written:
        committed = REFERENCE / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: make report"
    assert sorted(p.name for p in (REFERENCE / "report").iterdir()) == sorted(
        p.name for p in (tmp_path / "report").iterdir()
    )


def test_the_html_page_embeds_every_figure_and_needs_no_network():
    html = (REFERENCE / "report.html").read_text()
    figures = sorted(p.name for p in (REFERENCE / "report").iterdir())
    assert figures and html.count('src="data:image/png;base64,') == len(figures)
    assert "http://" not in html and "https://" not in html and "<table>" in html


def test_where_the_papers_number_falls_among_the_seeds():
    seeds = np.array([47.5, 52.7, 53.4])
    assert place(49.8, seeds) == "within (rank 2 of 4)"
    assert place(40.0, seeds) == "below all (rank 1 of 4)"
    assert place(60.0, seeds) == "above all (rank 4 of 4)"
    low, high = bootstrap_ci(seeds)
    assert seeds.min() <= low < seeds.mean() < high <= seeds.max()
    assert bootstrap_ci(np.array([11.35] * 3)) == (11.35, 11.35)
    assert bootstrap_ci(seeds) == (low, high)  # seeded: the same runs, the same report


def test_a_report_of_a_few_runs_has_their_sections_and_names_what_it_left_out(tmp_path, mnist_root):
    for reading in ("code", "text"):
        ffbench.run(["DNN_base", "adj_FFA0_1"], seeds=[0, 1], reading=reading, runs_dir=tmp_path,
                    progress=False, epochs=2, train_subset=500, batch_final=50)  # fmt: skip
    rows = [{"device": "cpu", "reading": "text", "batch": 64, "peak_gflops": 100.0,
             "dnn_epoch_s": 0.5, "ff_epoch_s": 1.25, "dnn_util": 0.4, "ff_util": 0.5}]  # fmt: skip
    saved = ffbench.api.save_bench(rows, tmp_path)
    assert saved.parent == tmp_path / "bench" and saved.name.endswith("-cpu-text.json")
    out = runner.invoke(app, ["report", "--runs-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    text = (tmp_path / "report.md").read_text()
    for title in ("The notes' table, reproduced", "Learning curves", "Training time", "Benchmark"):
        assert f"## {title}" in text
    assert f"| {saved.name} |" in text and "| 64 | 100 | 0.50 | 1.25 |" in text
    assert "## Test confusion matrices" in text and (tmp_path / "report" / "confusion.png").exists()
    assert "## What each switch does" not in text and "left out: ablation" in out.output
    result = json.loads(next(tmp_path.glob("code/DNN_base/seed-0-*/result.json")).read_text())
    counts = np.array(result["confusion"])  # [true label][predicted label] of the test set
    assert counts.sum() == 10000 and counts.trace() / 10000 == result["test_accuracy"]
    assert "| adj_FFA0_1 | code | 49.80 |" in text  # the paper's number beside our seeds


@pytest.mark.parametrize("make", [lambda p: p / "none", lambda p: p])
def test_a_report_of_no_runs_is_one_error_and_exit_2(tmp_path, make):
    out = runner.invoke(app, ["report", "--runs-dir", str(make(tmp_path))])
    assert out.exit_code == 2 and "holds no runs" in out.output
    assert not (tmp_path / "report.md").exists()


# After the page has loaded, the title says how many images there are, how many loaded (a
# broken data URI has no natural width) and how many tables.
CHECK = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.title = "checked " + JSON.stringify({images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0).length,
    tables: document.querySelectorAll("table").length});
});</script></body>"""


def chromium(*args, profile):
    """Debian's Chromium, headless, no network of its own (its background services are off)."""
    return subprocess.run([shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-quic", "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_report_opens_in_chromium_with_every_figure_and_table(tmp_path):
    """.ci/run installs Chromium and requires this test (FFBENCH_REQUIRE_BROWSER=1)."""
    if shutil.which("chromium") is None:
        why = "no chromium here; apt-get install chromium (Debian) to open the report"
        if os.environ.get("FFBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    page = tmp_path / "report.html"
    page.write_text((REFERENCE / "report.html").read_text().replace("</body>", CHECK))
    out = chromium("--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
                   profile=tmp_path / "profile")  # fmt: skip
    found = re.search(r"<title>checked (\{.*?\})</title>", out.stdout)
    assert found, out.stderr[-2000:]
    seen = json.loads(found.group(1))
    figures = len(list((REFERENCE / "report").iterdir()))
    tables = (REFERENCE / "report.md").read_text().count("\n|---")
    assert seen == {"images": figures, "loaded": figures, "tables": tables}
    shot = tmp_path / "report.png"
    html = (REFERENCE / "report.html").as_uri()
    chromium(f"--screenshot={shot}", "--window-size=1280,2400", html, profile=tmp_path / "profile")
    assert shot.stat().st_size > 10_000  # a page was drawn, not a blank one


def test_the_readmes_headline_table_is_the_reports():
    """`make report` writes both; the README's table between its markers is the report's."""
    readme = (REFERENCE.parents[1] / "README.md").read_text()
    headline = headline_of(readme)
    assert headline.startswith("| Experiment | Paper % | code % |")
    assert headline in (REFERENCE / "report.md").read_text()


def test_the_report_writes_the_readmes_headline_table_between_its_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{HEADLINE[0]}old table\n{HEADLINE[1]}\nrest\n")
    write(REFERENCE, tmp_path / "out", readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{HEADLINE[1]}\nrest\n")
    assert headline_of(text) == headline_of((REFERENCE.parents[1] / "README.md").read_text())


def test_the_readme_is_a_front_door():
    """At most 250 lines, its first screen what ffbench is and how to run it; the rest lives on
    the pages beside the report, which the README links."""
    readme = (REFERENCE.parents[1] / "README.md").read_text().splitlines()
    assert len(readme) <= 250
    assert any("make test" in line for line in readme[:40])
    assert any("make reproduce" in line for line in readme[:40])
    for page in (REFERENCE / "pages").iterdir():
        assert f"runs/reference/pages/{page.name}" in "\n".join(readme), page.name
