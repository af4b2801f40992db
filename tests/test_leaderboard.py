"""benchmarks/leaderboard.py in tiny configurations (``--quick``): the runs' tables, intervals and comparison with
the best, the headline table (and the README's copy), the per-scene scores (CSV, JSON), the slow methods' smaller N,
the figures, the intervention test of the shortcut run."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from conftest import load_script


@pytest.fixture(scope="module")
def leaderboard() -> ModuleType:
    """The script imported as a module."""
    return load_script("leaderboard")


def _tables(markdown: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every Markdown table: its header cells and body rows (cells)."""
    tables, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append((current[0], current[2:]))
            current = []
    return tables


def _interval(cell: str) -> tuple[float, float, float]:
    """``"0.980 [0.950, 1.000]"`` as ``(mean, low, high)``."""
    match = re.fullmatch(r"(-?\d+\.\d{3}) \[(-?\d+\.\d{3}), (-?\d+\.\d{3})\]", cell)
    assert match is not None, cell
    mean, low, high = (float(group) for group in match.groups())
    return mean, low, high


def _config(leaderboard: ModuleType, **settings):
    base = {
        "n": 6,
        "n_slow": 3,
        "n_perturbation": 2,
        "steps": 2,
        "road_percentiles": (50,),
        "resamples": 500,
        "out_md": None,
        "out_figures": None,
        "out_csv": None,
        "out_json": None,
        "verbose": False,
    }
    return leaderboard.LeaderboardConfig(**{**base, **settings})


def test_quick_run_writes_tables_scores_and_figures(leaderboard: ModuleType, tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{leaderboard.README_START}\nold\n{leaderboard.README_END}\nrest\n", encoding="utf-8")
    status = leaderboard.main(
        [
            "--quick",
            "--output-dir",
            str(tmp_path),
            "--methods",
            "gradcam,randomcam,scorecam,legrad",
            "--readme",
            str(readme),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "skipping legrad on cnn" in out and "ViT-only" in out
    quick = leaderboard.QUICK
    markdown = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    tables = _tables(markdown)
    headline_header, headline_rows = tables[0]
    assert headline_header[0] == "method" and len(headline_header) == 1 + len(quick["runs"])
    assert [row[0] for row in headline_rows[:-1]].count("`legrad`") == 1  # run on the ViT only
    assert headline_rows[-1][0] == "*model accuracy on these scenes*"
    legrad = next(row for row in headline_rows if row[0] == "`legrad`")
    assert legrad[1] == "–" and legrad[2] != "–"  # cnn · single: not run; vit · pair: run

    # one table per run, with the scenario's metrics
    run_tables = [t for t in tables if t[0][:4] == ["#", "method", "N", "≈ best"]]
    assert len(run_tables) == len(quick["runs"])
    for (model, scenario), (header, rows) in zip(quick["runs"], run_tables):
        metrics = leaderboard.SCENARIO_METRICS[scenario]
        assert header[4:-1] == [metric.title for metric in metrics] and header[-1] == "s / image"
        names = sorted(row[1].split()[0] for row in rows)
        expected = ["`gradcam`", "`randomcam`", "`scorecam`"] + (["`legrad`"] if model == "vit" else [])
        assert names == sorted(expected)
        marks = [row[3] for row in rows]
        assert marks.count("best") == 1 and set(marks) <= {"best", "≈", ""}
        assert rows[marks.index("best")][1] != "`scorecam`"  # the reference is run on every scene
        for row in rows:
            count = quick["n_slow"] if row[1] == "`scorecam`" else quick["n"]
            perturbation = any(metric.perturbation for metric in metrics)
            assert row[2] == (f"{count}*" if row[1] == "`scorecam`" else f"{count}") + (
                f" / {min(count, quick['n_perturbation'])}" if perturbation else ""
            )
            for cell in row[4:-1]:
                mean, low, high = _interval(cell)
                assert low <= mean <= high
        means = [_interval(row[4])[0] for row in rows]
        assert means == sorted(means, reverse=True)
    # the intervention test of the shortcut run
    intervention = next(t for t in tables if t[0][0] == "intervention")
    assert [row[0].split()[0] for row in intervention[1]] == ["marker", "shape", "marker"]
    assert "--quick" in markdown and "percentiles=[50]" in markdown
    for scenario in {scenario for _, scenario in quick["runs"]}:
        png = tmp_path / "images" / f"leaderboard_{scenario}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(images/leaderboard_{scenario}.png)" in markdown
    # the README's copy of the headline table, between its markers
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("intro\n") and text.endswith("rest\n") and "old" not in text
    assert _tables(text)[0] == (headline_header, headline_rows)

    # Every per-scene score, in CSV and JSON, agreeing with the tables' means.
    with open(tmp_path / "leaderboard_scores.csv", encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0])[:5] == ["model", "scenario", "method", "scene", "labels"]
    document = json.loads((tmp_path / "leaderboard_scores.json").read_text(encoding="utf-8"))
    assert document["settings"]["n"] == quick["n"]
    assert [(run["model"], run["scenario"]) for run in document["runs"]] == quick["runs"]
    for run, (_, rows) in zip(document["runs"], run_tables):
        if run["scenario"] == "pair":
            assert all(re.fullmatch(r"\d\+\d", labels) for labels in run["labels"])
        for entry in run["methods"]:
            row = next(row for row in rows if row[1].split()[0] == f"`{entry['method']}`")
            for cell, metric in zip(row[4:-1], leaderboard.SCENARIO_METRICS[run["scenario"]]):
                scores = entry["scores"][metric.key]
                assert _interval(cell)[0] == pytest.approx(sum(scores) / len(scores), abs=6e-4)  # 3 decimals
            mine = [
                r
                for r in records
                if (r["model"], r["scenario"], r["method"]) == (run["model"], run["scenario"], entry["method"])
            ]
            assert len(mine) == entry["n"]
            ranking = run["ranking_metric"]
            assert [float(r[ranking]) for r in mine] == entry["scores"][ranking]
            assert (entry["versus_best"] is None) == (row[3] == "best")
    shortcut = next(run for run in document["runs"] if run["scenario"] == "shortcut")
    assert set(shortcut["interventions"]) == {"no_marker", "no_shape", "swap_marker"}


def test_rows_are_repeatable_sorted_and_compared(leaderboard: ModuleType) -> None:
    config = _config(leaderboard, methods=["randomcam", "gradcam", "hirescam"], runs=[("cnn", "single")])
    first = leaderboard.run_leaderboard(config).run("cnn", "single")
    second = leaderboard.run_leaderboard(config).run("cnn", "single")
    assert [r.name for r in first.results] == [r.name for r in second.results]
    for a, b in zip(first.results, second.results):
        assert a.intervals == b.intervals and a.versus_best == b.versus_best
        for metric in leaderboard.SCENARIO_METRICS["single"]:
            np.testing.assert_array_equal(a.scores[metric.key], b.scores[metric.key])
            assert a.mean(metric.key) == pytest.approx(float(np.mean(a.scores[metric.key])))
            assert len(a.scores[metric.key]) == (2 if metric.perturbation else 6)
    assert all(r.seconds_per_image > 0 for r in first.results)
    keys = [(-r.mean("pointing_game"), -r.mean("energy_pointing_game")) for r in first.results]
    assert keys == sorted(keys)
    assert first.cams["gradcam"].shape == (6, 64, 64)
    # gradcam and hirescam give bitwise-identical maps here: the perturbation scores are computed once.
    results = {r.name: r for r in first.results}
    assert {results["gradcam"].shares_scores_with, results["hirescam"].shares_scores_with} == {None, "gradcam"}
    assert first.results[0].versus_best is None and first.results[0].like_best
    for result in first.results[1:]:
        assert result.versus_best is not None
        if np.array_equal(result.scores["pointing_game"], first.results[0].scores["pointing_game"]):
            assert result.like_best and result.versus_best.difference.width == 0


def test_pair_scores_are_per_scene_means_of_two_explanations(leaderboard: ModuleType) -> None:
    config = _config(leaderboard, methods=["gradcam", "eigencam"], runs=[("cnn", "pair")], n=5)
    run = leaderboard.run_leaderboard(config).run("cnn", "pair")
    explanations = run.explanations
    assert explanations.labels.shape == (10,) and list(explanations.scene) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert not (explanations.right & explanations.wrong).any()
    eigencam = next(r for r in run.results if r.name == "eigencam")
    # the same map for both classes of a scene: at most one of the two explanations hits, the shares add to 1
    assert np.all(eigencam.scores["discriminative_pointing_game"] <= 0.5)
    np.testing.assert_allclose(eigencam.scores["relevance_share"], 0.5, atol=1e-9)
    assert set(np.unique(run.results[0].scores["discriminative_pointing_game"])) <= {0.0, 0.5, 1.0}


def test_slow_methods_use_fewer_scenes(leaderboard: ModuleType) -> None:
    config = _config(
        leaderboard,
        n=5,
        n_slow=2,
        n_perturbation=3,
        methods=["gradcam", "scorecam"],
        runs=[("cnn", "single")],
        resamples=200,
    )
    run = leaderboard.run_leaderboard(config).run("cnn", "single")
    results = {r.name: r for r in run.results}
    assert (results["gradcam"].n, results["gradcam"].n_perturbation) == (5, 3)
    assert (results["scorecam"].n, results["scorecam"].n_perturbation) == (2, 2)
    assert "scorecam" in leaderboard.SLOW_METHODS
    assert "| 2* / 2 |" in leaderboard.format_table(run)


def test_bad_arguments(leaderboard: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        leaderboard.select_methods(["gradcam", "nosuchcam"])
    with pytest.raises(ValueError, match="no CAM method left"):
        leaderboard.select_methods(["legrad"])
    assert leaderboard.select_methods(["legrad"], vit=True) == (["legrad"], {})
    with pytest.raises(ValueError, match="repeat"):
        leaderboard.select_methods(["gradcam", "GradCAM"])
    with pytest.raises(TypeError, match="methods"):
        leaderboard.select_methods("gradcam")
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        leaderboard.select_runs([("resnet", "single")])
    with pytest.raises(ValueError, match="unknown scenario 'triple'"):
        leaderboard.select_runs([("cnn", "triple")])
    with pytest.raises(ValueError, match="does not fit"):
        leaderboard.select_runs([("cnn", "shortcut")])
    with pytest.raises(ValueError, match="does not fit"):
        leaderboard.select_runs([("shortcut_cnn", "single")])
    with pytest.raises(ValueError, match="repeat"):
        leaderboard.select_runs([("cnn", "pair"), ("cnn", "pair")])
    with pytest.raises(TypeError, match="runs"):
        leaderboard.select_runs("cnn:single")
    with pytest.raises(ValueError, match="training seed"):
        leaderboard.run_leaderboard(_config(leaderboard, n=2, seed=0))
    with pytest.raises(ValueError, match="confidence"):
        leaderboard.run_leaderboard(_config(leaderboard, n=2, confidence=1.5))
    with pytest.raises(ValueError, match="n_slow"):
        leaderboard.run_leaderboard(_config(leaderboard, n=2, n_slow=0))
    with pytest.raises(ValueError, match="road_percentiles"):
        leaderboard.run_leaderboard(_config(leaderboard, n=2, road_percentiles=(0,)))
    assert leaderboard.main(["--n", "0", "--output-dir", str(tmp_path), "--quiet"]) == 2
    assert not (tmp_path / "leaderboard.md").exists()
    assert leaderboard.main(["--quick", "--resamples", "0", "--output-dir", str(tmp_path), "--quiet"]) == 2
    assert not (tmp_path / "leaderboard_scores.csv").exists()
    with pytest.raises(SystemExit):
        leaderboard.main(["--runs", "cnn-single"])
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        leaderboard.update_readme(readme, "| table |", _config(leaderboard))
