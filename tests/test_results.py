import json
import math

import pytest

from ffbench.report import formats
from ffbench.report import table as results
from ffbench.rows import get, under
from ffbench.runner.store import write_json


def fake_run(
    root, name, seed, status, acc, seconds, /, overrides=None, suffix="", readouts=None, **config
):
    """A run directory as `ffbench run` leaves it (only the files the table reads): the row
    under its reading (`reading=`, default text) with `overrides` and `config` set."""
    path = root / name / f"seed-{seed}{suffix}"
    path.mkdir(parents=True)
    reading = config.get("reading", "text")
    write_json(path / "config.json", under(get(name), reading).config() | (overrides or {})
               | config)  # fmt: skip
    write_json(path / "result.json", {
        "experiment": name, "reading": reading, "seed": seed, "status": status,
        "test_accuracy": acc, "train_seconds": seconds, "device": "cpu",
        "overrides": overrides or {}, "diverged_epoch": config.get("diverged_epoch"),
    } | ({"readouts": readouts} if readouts else {}))  # fmt: skip
    return path


def test_a_second_readout_is_its_own_row_with_the_runs_time(tmp_path):
    fake_run(tmp_path, "FF_best", 0, "finished", 0.985, 1500.0, readouts={"head": 0.987})
    fake_run(tmp_path, "FF_best", 1, "finished", 0.987, 1700.0, readouts={"head": 0.989})
    held = fake_run(tmp_path, "FF_best", 0, "finished", 0.98, 9.0, suffix="-v", epochs=30,
                    readouts={"head": 0.97}, overrides={"epochs": 30})  # fmt: skip
    result = json.loads((held / "result.json").read_text()) | {"validation_accuracy": 0.975}
    write_json(held / "result.json", result)
    agg = results.aggregate(results.load_runs(tmp_path))
    short = agg[agg.overrides != ""].set_index("experiment")
    assert short.validation["FF_best"] == pytest.approx(97.5)
    assert math.isnan(short.validation["FF_best/head"])  # the head is never scored on validation
    agg = agg[agg.overrides == ""]
    rows = {r["experiment"]: r for r in agg.to_dict("records")}
    assert set(rows) == {"FF_best", "FF_best/head"}
    assert rows["FF_best"]["accuracy"] == pytest.approx(98.6)
    assert rows["FF_best/head"]["accuracy"] == pytest.approx(98.8)
    assert rows["FF_best/head"]["n"] == 2 and rows["FF_best/head"]["time_s"] == 1600.0
    header, shown = results.display_rows(agg)
    paper_col = header.index("Paper %")
    assert [r[paper_col] for r in shown] == ["-", "-"]  # no paper number, not the paper's NAN
    header, shown = results.display_rows(results.aggregate(results.load_runs(tmp_path)))
    val = header.index("Val %")
    assert sorted(r[val] for r in shown) == ["-", "-", "-", "97.50"]  # "-": none held out


def test_two_seeds_aggregate_to_mean_and_std(tmp_path):
    fake_run(tmp_path, "DNN_base", 0, "finished", 0.9770, 300.0)
    fake_run(tmp_path, "DNN_base", 1, "finished", 0.9790, 320.0)
    agg = results.aggregate(results.load_runs(tmp_path))
    (row,) = agg.to_dict("records")
    assert row["n"] == 2 and row["status"] == "finished"
    assert row["accuracy"] == pytest.approx(97.80)
    assert row["accuracy_std"] == pytest.approx(math.sqrt(2 * 0.1**2))  # sample std of 97.7, 97.9
    assert row["time_s"] == pytest.approx(310.0)
    assert row["paper_accuracy"] == 97.73 and row["paper_time_s"] == 24


def test_diverged_runs_print_nan_and_are_counted(tmp_path):
    fake_run(tmp_path, "FFA0", 0, "diverged", math.nan, 50.0)
    fake_run(tmp_path, "adj_FFA0_1", 0, "finished", 0.5, 80.0)
    fake_run(tmp_path, "adj_FFA0_1", 1, "diverged", math.nan, 90.0)
    agg = results.aggregate(results.load_runs(tmp_path)).set_index("experiment")
    assert math.isnan(agg.loc["FFA0", "accuracy"]) and agg.loc["FFA0", "status"] == "diverged"
    assert agg.loc["adj_FFA0_1", "accuracy"] == pytest.approx(50.0)
    assert agg.loc["adj_FFA0_1", "diverged"] == 1 and agg.loc["adj_FFA0_1", "n"] == 2
    assert "NAN" in formats.markdown(*results.display_rows(agg.reset_index()))


def test_rows_follow_the_paper_order_and_variants_stay_apart(tmp_path):
    fake_run(tmp_path, "adj_FFA1_3", 0, "finished", 0.2, 1.0)
    fake_run(tmp_path, "DNN_base", 0, "finished", 0.97, 1.0)
    fake_run(tmp_path, "DNN_base", 0, "finished", 0.9, 1.0, {"epochs": 2}, "-abc", epochs=2)
    agg = results.aggregate(results.load_runs(tmp_path))
    assert list(agg.experiment) == ["DNN_base", "DNN_base", "adj_FFA1_3"]
    assert list(agg.overrides) == ["", "epochs=2", ""]


def test_a_malformed_result_is_skipped_with_a_warning(tmp_path):
    fake_run(tmp_path, "DNN_base", 0, "finished", 0.97, 1.0)
    bad = fake_run(tmp_path, "FFA1", 0, "finished", 0.1, 1.0)
    (bad / "result.json").write_text('{"experiment": "FFA1", "seed"')
    warnings = []
    runs = results.load_runs(tmp_path, warn=warnings.append)
    assert list(runs.experiment) == ["DNN_base"]
    assert len(warnings) == 1 and "FFA1/seed-0/result.json" in warnings[0]


def test_csv_has_the_documented_columns(tmp_path):
    fake_run(tmp_path, "DNN_base", 0, "finished", 0.97, 1.0)
    header = (
        formats.to_csv(results.aggregate(results.load_runs(tmp_path))).splitlines()[0].split(",")
    )
    for col in ("experiment", "accuracy", "accuracy_std", "n", "time_s", "paper_accuracy",
                "paper_time_s", "status"):  # fmt: skip
        assert col in header


def test_readings_group_apart_and_stand_side_by_side(tmp_path):
    """A run's reading comes from its config.json (none: a run from before readings, text);
    each reading is its own row, and --side-by-side puts them beside the paper's number."""
    fake_run(tmp_path / "code", "adj_FFA0_1", 0, "finished", 0.49, 1600.0, reading="code")
    fake_run(tmp_path / "code", "adj_FFA0_1", 1, "finished", 0.51, 1700.0, reading="code")
    fake_run(tmp_path / "code", "FFA0", 0, "diverged", math.nan, 1500.0, reading="code",
             diverged_epoch=380)  # fmt: skip
    fake_run(tmp_path / "text", "adj_FFA0_1", 0, "finished", 0.1135, 2100.0)
    gpu = fake_run(tmp_path / "code", "adj_FFA0_1", 0, "finished", 0.53, 90.0, suffix="-cuda",
                   reading="code")  # fmt: skip
    write_json(gpu / "result.json", json.loads((gpu / "result.json").read_text())
               | {"device": "cuda"})  # fmt: skip
    agg = results.aggregate(results.load_runs(tmp_path))
    got = {(r["experiment"], r["reading"], r["device"]): r for r in agg.to_dict("records")}
    got = {k[:2]: r for k, r in got.items() if k[2] == "cpu"}
    assert set(got) == {("adj_FFA0_1", "code"), ("adj_FFA0_1", "text"), ("FFA0", "code")}
    assert got["adj_FFA0_1", "code"]["accuracy"] == pytest.approx(50.0)
    assert got["FFA0", "code"]["diverged_epochs"] == "380"
    header, rows = results.side_by_side(agg)
    assert header == ["Experiment", "Paper %", "code %", "code time", "text %", "text time",
                      "Paper time"]  # fmt: skip
    by_name = {r[0]: r for r in rows}
    assert by_name["adj_FFA0_1"][1:6] == ["49.80", "50.00 ± 1.41, n=2", "27:30", "11.35, n=1",
                                          "35:00"]  # fmt: skip
    assert by_name["FFA0"][2] == "NAN (diverged at 380), n=1" and by_name["FFA0"][4] == "-"
    assert by_name["adj_FFA0_1 (cuda)"][1:5] == ["49.80", "53.00, n=1", "1:30", "-"]


def test_the_ablation_view_gives_each_flip_its_change_against_the_same_seeds(tmp_path):
    code = tmp_path / "code"
    fake_run(code, "adj_FFA0_1", 0, "finished", 0.50, 1400.0, reading="code")
    fake_run(code, "adj_FFA0_1", 1, "finished", 0.40, 1400.0, reading="code")
    fake_run(code, "adj_FFA0_1", 0, "finished", 0.1135, 1500.0, reading="code",
             overrides={"negatives": "other_image"}, suffix="-aa")  # fmt: skip
    fake_run(code, "adj_FFA0_1", 0, "finished", 0.52, 1300.0, reading="code",
             overrides={"theta": 2.0}, suffix="-bb")  # fmt: skip
    fake_run(code, "adj_FFA0_1", 1, "finished", 0.46, 1300.0, reading="code",
             overrides={"theta": 2.0}, suffix="-bb")  # fmt: skip
    fake_run(code, "adj_FFA0_1", 5, "finished", 0.9, 1300.0, reading="code",
             overrides={"bias": True}, suffix="-cc")  # fmt: skip
    fake_run(code, "DNN_base", 0, "finished", 0.97, 500.0, reading="code")
    header, rows = results.ablation(results.load_runs(tmp_path), "adj_FFA0_1")
    assert header[1:6] == ["Flipped", "n", "Accuracy %", "Change (points)", "vs seeds"]
    assert [r[1] for r in rows] == ["(none)", "bias=True", "negatives=other_image", "theta=2.0"]
    assert rows[0][3] == "45.00 ± 7.07"
    # seed 0 against seed 0 (50 %), not against the mean of seeds 0 and 1 (45 %)
    assert [r[4] for r in rows] == ["-", "-", "-38.65", "+4.00"]
    assert [r[5] for r in rows] == ["-", "-", "0", "0,1"]


def test_an_ablation_made_before_a_switch_existed_keeps_its_own_unflipped_runs(tmp_path):
    """Every run of an ablation made before `denormals` existed carries its value then
    (denormals=flush): those are its unflipped runs, each flip shows as the one setting it adds,
    and a later run of the row's own settings does not become their base."""
    code, flush = tmp_path / "code", {"denormals": "flush"}
    for suffix, acc, flip in (("-a", 0.50, {}), ("-b", 0.60, {"theta": 2.0}),
                              ("-c", 0.40, {"bias": True})):  # fmt: skip
        fake_run(code, "adj_FFA0_1", 0, "finished", acc, 1400.0, reading="code",
                 overrides=flush | flip, suffix=suffix)  # fmt: skip
    fake_run(code, "adj_FFA0_1", 0, "finished", 0.55, 1400.0, reading="code", suffix="-d")
    runs = results.load_runs(tmp_path)
    assert results.ablation_base(runs, "adj_FFA0_1", "code") == "denormals=flush"
    header, rows = results.ablation(runs, "adj_FFA0_1")
    assert [r[1] for r in rows] == ["(none)", "bias=True", "theta=2.0"]
    assert [r[4] for r in rows] == ["-", "-10.00", "+10.00"]


def test_cpu_and_gpu_runs_are_never_averaged_together(tmp_path):
    fake_run(tmp_path, "DNN_base", 0, "finished", 0.975, 500.0)
    path = fake_run(tmp_path, "DNN_base", 1, "finished", 0.976, 20.0, suffix="-cuda")
    result = json.loads((path / "result.json").read_text())
    write_json(path / "result.json", result | {"device": "cuda:0"})
    agg = results.aggregate(results.load_runs(tmp_path))
    rows = sorted(zip(agg.device, agg.time_s, agg.n, strict=True))
    assert rows == [("cpu", 500.0, 1), ("cuda:0", 20.0, 1)]


def test_a_run_made_before_its_row_changed_shows_as_an_override(tmp_path):
    """Overrides are read against the row as registered now, not as the run recorded them: a
    run of FG_weight at the rate it had before fg_rates chose 3e-4 (1e-3, fg_rates_40's choice)
    is not a run of the row."""
    row = get("FG_weight").settings()
    assert row["lr"] != 1e-3
    fake_run(tmp_path / "text", "FG_weight", 0, "finished", 0.90, 100.0, **row | {"lr": 1e-3})
    fake_run(tmp_path / "text", "FG_weight", 1, "finished", 0.95, 100.0, **row)
    runs = results.load_runs(tmp_path)
    assert dict(zip(runs.seed, runs.overrides, strict=True)) == {0: "lr=0.001", 1: ""}
