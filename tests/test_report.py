"""`ffbench report`: generated from the run files alone, the same bytes from the same runs."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from test_results import fake_run
from typer.testing import CliRunner

import ffbench
from ffbench.cli import app
from ffbench.report.commentary import Facts, Missing, bare_numbers, render, templates
from ffbench.report.document import (
    block_of,
    bootstrap_ci,
    build,
    markers,
    notes_rows,
    place,
    write,
)
from ffbench.report.table import load_runs
from ffbench.rows import overrides_of

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
    assert "## What each switch does" not in text
    assert "ablation (no `ffbench ablate` runs)" in out.output
    assert "the commentary on the notes' table, reproduced (no " in out.output
    assert "### The code reading, row by row" not in text  # it reads runs that are not here
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


def test_the_readmes_generated_blocks_are_the_reports():
    """`make report` writes both; the README's table and timing between their markers are the
    report's."""
    readme = (REFERENCE.parents[1] / "README.md").read_text()
    report = build(REFERENCE)
    assert "\n| Experiment | Paper % | code % |" in "\n" + block_of(readme)
    assert block_of(readme) == report.readme["reproduction-table"]
    assert block_of(readme) in (REFERENCE / "report.md").read_text()
    assert block_of(readme, "timing") == report.readme["timing"]
    assert "minutes of training under the code reading" in report.readme["timing"]


def test_the_report_writes_the_readmes_blocks_between_their_markers(tmp_path):
    readme = tmp_path / "README.md"
    start, end = markers("reproduction-table")
    readme.write_text(f"intro\n{start}old table\n{end}\nrest\n")
    write(REFERENCE, tmp_path / "out", readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{end}\nrest\n")
    assert block_of(text) == block_of((REFERENCE.parents[1] / "README.md").read_text())
    readme.write_text(f"{text}{markers('nothing')[0]}{markers('nothing')[1]}\n")
    with pytest.raises(ValueError, match="block nothing needs runs"):
        write(REFERENCE, tmp_path / "out", readme)


def test_the_commentary_carries_no_bare_number():
    """Every number in a commentary template is a placeholder filled from the runs, or quoted
    ({{q VALUE SOURCE}}, {{notes ROW}}); digits elsewhere only in code, citations (eq 3.13,
    Table 3, core/FFA.py:22) and the epoch, seed, batch or layer a figure is read at."""
    assert set(templates()) >= {"reproduction", "ablations", "beyond", "studies", "speed"}
    for name, template in templates().items():
        assert bare_numbers(template) == [], name


def test_a_bare_number_is_found_and_a_placeholder_or_citation_is_not():
    assert bare_numbers("seed 0 ends at 53.38 %, the figure 1.385") == ["53.38", "1.385"]
    assert bare_numbers("ends at {{acc adj_FFA0_1 code seed=0}} % (eq 3.13, Table 3)") == []
    assert bare_numbers("`theta=2.0` (core/FFA.py:32-38, Ren et al. 2023) at epoch 80") == []
    assert bare_numbers("θ = 2, the 784 pixels") == ["2", "784"]


@pytest.fixture(scope="module")
def facts():
    runs = load_runs(REFERENCE, warn=lambda _: None)
    return Facts(runs.assign(path=runs.path.map(lambda p: str(Path(p)))), REFERENCE)


def run_of(pattern, overrides=None, **config):
    """The committed run directory matching `pattern` whose result.json records `overrides`
    and whose config.json has the `config` values."""
    for path in sorted(p.parent for p in REFERENCE.glob(f"{pattern}/result.json")):
        recorded = json.loads((path / "result.json").read_text())["overrides"]
        settings = json.loads((path / "config.json").read_text())
        if recorded == (overrides or {}) and all(settings[k] == v for k, v in config.items()):
            return path
    raise LookupError(f"no run {pattern} with {overrides} and {config}")


def result(path):
    return json.loads((path / "result.json").read_text())


def test_the_placeholders_read_the_run_files(facts):
    seed0 = result(run_of("code/adj_FFA0_1/seed-0-*", denormals="flush"))
    flush = "set=denormals=flush"
    assert render(f"{{{{acc adj_FFA0_1 code seed=0 {flush}}}}}", facts) == (
        f"{100 * seed0['test_accuracy']:.2f}"
    )
    theta = run_of("code/adj_FFA0_1/seed-0-*", {"theta": 2.0}, denormals="flush")
    change = 100 * (result(theta)["test_accuracy"] - seed0["test_accuracy"])
    assert render("{{delta adj_FFA0_1 code seed=0 set=theta=2.0 base=denormals=flush}}",
                  facts) == f"{change:+.2f}"  # fmt: skip
    ffa0 = run_of("code/FFA0/seed-0-*", denormals="flush")
    assert render(f"{{{{diverged FFA0 code seed=0 {flush}}}}}", facts) == str(
        result(ffa0)["diverged_epoch"]
    )
    metrics = (ffa0 / "metrics.csv").read_text().splitlines()
    margin = float(metrics[266].split(",")[5])  # epoch 266's margin_max (line 0 is the header)
    assert render(f"{{{{at FFA0 code seed=0 col=margin_max epoch=266 {flush}}}}}", facts) == (
        f"{margin:.2f}"
    )
    errors = {}
    for row in ("FG_local", "Ren_BP"):  # its CPU runs at its settings as registered now
        paths = [p.parent for p in REFERENCE.glob(f"text/{row}/seed-*-cpu-*/result.json")]
        errors[row] = [100 * (1 - result(p)["test_accuracy"]) for p in paths
                       if not overrides_of(json.loads((p / "config.json").read_text()),
                                           result(p)["overrides"])]  # fmt: skip
    assert [len(e) for e in errors.values()] == [3, 3]
    gap = sum(errors["FG_local"]) / 3 - sum(errors["Ren_BP"]) / 3
    assert render("{{gap FG_local Ren_BP text}}", facts) == f"{gap:.2f}"
    with pytest.raises(Missing, match="needs two runs of each"):
        render("{{gap FG_local DNN_base text}}", facts)
    assert render("{{notes adj_FFA0_1}} {{q 1.448 figure}}", facts) == "*49.80* *1.448*"
    with pytest.raises(ValueError, match="unknown source"):
        render("{{q 1.4 a-blog}}", facts)
    with pytest.raises(ValueError, match="unknown placeholder"):
        render("{{accuracy FFA0 code}}", facts)
    with pytest.raises(
        Missing, match=r"no finished run of FFA0 \(code, cpu, seed=7, its own settings\)"
    ):
        render("{{acc FFA0 code seed=7}}", facts)


def test_the_authors_code_and_the_predictions_are_read_from_their_files(facts):
    """`authors` reads the authors' own code run here (outcome.json, metrics.csv under
    runs/reference/authors), `predicts` a run's confusion matrix, `agree` two runs' losses."""
    folder = next((REFERENCE / "authors" / "adj_FFA1_2").glob("seed-0-torch*"))
    outcome = json.loads((folder / "outcome.json").read_text())
    assert render("{{authors adj_FFA1_2 seed=0 key=accuracy}}", facts) == (
        f"{100 * outcome['test_accuracy']:.2f}"
    )
    last = (folder / "metrics.csv").read_text().splitlines()[400].split(",")
    assert render("{{authors_at adj_FFA1_2 seed=0 col=loss epoch=400 dp=7}}", facts) == (
        f"{float(last[3]):.7f}".replace("-", "−")
    )
    given = [sum(column) for column in zip(*outcome["confusion"], strict=True)]
    top = max(range(10), key=given.__getitem__)
    assert render("{{authors adj_FFA1_2 seed=0 key=predicts}}", facts).startswith(
        f"{top} ({100 * given[top] / 10000:.0f} %)"
    )
    with pytest.raises(Missing, match="no run of the authors' code for adj_FFA1_2 seed 9"):
        render("{{authors adj_FFA1_2 seed=9 key=accuracy}}", facts)


def test_each_reading_is_reproduced_by_the_settings_most_of_its_runs_share(tmp_path):
    """The code reading's runs made before a switch existed (denormals=flush) outnumber its
    reruns: the reproduction reads them, and says so; the text reading's own runs stand."""
    flush = {"denormals": "flush"}
    for seed in (0, 1):
        fake_run(tmp_path / "code", "adj_FFA0_1", seed, "finished", 0.5, 9.0, reading="code",
                 overrides=flush)  # fmt: skip
        fake_run(tmp_path / "text", "adj_FFA0_1", seed, "finished", 0.1, 9.0)
    fake_run(tmp_path / "code", "adj_FFA0_1", 0, "finished", 0.6, 9.0, reading="code",
             suffix="-kept")  # fmt: skip
    chosen, common = notes_rows(load_runs(tmp_path))
    assert common == {"code": "denormals=flush"}
    assert sorted(zip(chosen.reading, chosen.test_accuracy, strict=True)) == [
        ("code", 0.5),
        ("code", 0.5),
        ("text", 0.1),
        ("text", 0.1),
    ]


def test_agree_says_where_two_runs_part(tmp_path):
    """Two runs of one seed whose losses part at epoch 3: `agree` says until epoch 2."""
    for suffix, losses, overrides in (("-a", [1.0, 0.9, 0.8], None),
                                      ("-b", [1.0, 0.9, 0.7], {"theta": 2.0})):  # fmt: skip
        path = fake_run(tmp_path / "code", "adj_FFA0_1", 0, "finished", 0.5, 9.0,
                        reading="code", suffix=suffix, overrides=overrides)  # fmt: skip
        lines = ["epoch,loss"] + [f"{e},{v}" for e, v in enumerate(losses, 1)]
        (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    facts = Facts(load_runs(tmp_path), tmp_path)
    agree = "{{agree adj_FFA0_1 code seed=0 other=theta=2.0}}"
    assert render(agree, facts) == "to the last digit until epoch 2"
    assert render("{{agree adj_FFA0_1 code seed=0 other=theta=2.0 col=epoch}}", facts) == (
        "to the last digit at all 3 epochs"
    )


def test_the_reference_report_leaves_no_commentary_out():
    """A placeholder whose run is missing drops its section's commentary with a line saying so;
    for the committed runs every commentary is there."""
    left_out = build(REFERENCE).left_out
    assert not [line for line in left_out if "commentary" in line or "README" in line], left_out


def test_the_readme_is_a_front_door():
    """At most 250 lines, its first screen what ffbench is and how to run it; the rest lives on
    the pages beside the report, which the README links."""
    readme = (REFERENCE.parents[1] / "README.md").read_text().splitlines()
    assert len(readme) <= 250
    assert any("make test" in line for line in readme[:40])
    assert any("make reproduce" in line for line in readme[:40])
    for page in (REFERENCE / "pages").iterdir():
        assert f"runs/reference/pages/{page.name}" in "\n".join(readme), page.name


def test_the_confusion_matrix_is_the_count_of_each_true_and_predicted_label(mnist_small):
    """loop.confusion against a count by hand, over more images than one evaluation chunk."""
    from ffbench.runner.loop import EVAL_CHUNK, confusion

    x = torch.cat([mnist_small.x_test, mnist_small.x_test[:123]])
    y = torch.cat([mnist_small.y_test, mnist_small.y_test[:123]])
    assert len(x) > EVAL_CHUNK
    guess = lambda images: (images.sum(1) * 7).long() % 10  # noqa: E731  any fixed labelling
    by_hand = torch.zeros(10, 10, dtype=torch.long)
    for true, label in zip(y.tolist(), guess(x).tolist(), strict=True):
        by_hand[true, label] += 1
    assert torch.equal(confusion(guess, x, y), by_hand)


def test_the_table_says_which_labels_a_row_predicts():
    from ffbench.report.table import predicted, predicts

    matrix = [[0] * 10 for _ in range(10)]
    matrix[1][1], matrix[7][1], matrix[0][0], matrix[3][7] = 600, 100, 250, 50
    assert predicted(matrix) == (250, 700, 0, 0, 0, 0, 0, 50, 0, 0)
    assert predicts([predicted(matrix)]) == "1 (70 %), 0 (25 %), 7 (5 %)"
    assert predicts([tuple(range(1, 11))]) == "8 labels"  # labels 0 and 1 get under 5 %
    assert predicts([]) == "-" and predicted(None) is None


def test_rens_rows_sit_beside_table_3_and_the_variance_law_is_read_from_its_csv(tmp_path):
    """The section on Ren et al.'s network: each row's seeds as test error beside Table 3's
    number, its samples seen from its config; the variance table is figures/variance.csv's
    numbers; and the rows are not in the section beyond the notes too."""
    fake_run(tmp_path / "text", "Ren_BP", 0, "finished", 0.9750, 600.0)
    fake_run(tmp_path / "text", "Ren_BP", 1, "finished", 0.9770, 700.0)
    fake_run(tmp_path / "text", "Ren_LG_FG_A", 0, "finished", 0.9700, 900.0)
    fake_run(tmp_path / "text", "FF_best", 0, "finished", 0.985, 1500.0)
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "variance.csv").write_text(
        "estimator,masked,q,q_plus_1,relative_error,cos_batch\n"
        + "".join(f"{k},{m},{q},{q + 1},{q * (0.5 if m else 1) + 0.25},{1 / q}\n"
                  for k in ("activity", "local") for m in (False, True) for q in (16, 8))
    )  # fmt: skip
    report = build(tmp_path)
    text = dict(report.sections)["Forward gradients as Ren et al. make them"]
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in text.splitlines()
            if line.startswith("| Ren_")}  # fmt: skip
    assert rows["Ren_BP"][2:8] == ["2", "2.30, 2.50", "2.40 ± 0.14", "2.41", "12.0 M", "0.1"]
    assert rows["Ren_LG_FG_A"][2:6] == ["1", "3.00", "3.00", "2.55"] and len(rows) == 2
    assert "| 16 | 17 | 16.2 | 8.2 | 16.2 | 8.2 | 0.06 |" in text
    assert "| 8 | 9 | 8.2 | 4.2 | 8.2 | 4.2 | 0.12 |" in text and "report/variance.png" in text
    beyond = dict(report.sections)["Beyond the notes: FF at its best and forward gradients"]
    assert "FF_best" in beyond and "Ren_" not in beyond
