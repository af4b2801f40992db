"""benchmarks/leaderboard.py in tiny configurations (``--quick``): the table's columns, intervals and comparison with
the best, the per-image scores (CSV, JSON), the slow methods' smaller N, the figure."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "leaderboard.py"


@pytest.fixture(scope="module")
def leaderboard() -> ModuleType:
    """The script imported as a module (``benchmarks`` is not a package)."""
    spec = importlib.util.spec_from_file_location("leaderboard_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def _table_rows(markdown: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the body rows (cells) of the first Markdown table."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return split[0], split[2:]


def _interval(cell: str) -> tuple[float, float, float]:
    """``"0.980 [0.950, 1.000]"`` as ``(mean, low, high)``."""
    match = re.fullmatch(r"(-?\d+\.\d{3}) \[(-?\d+\.\d{3}), (-?\d+\.\d{3})\]", cell)
    assert match is not None, cell
    mean, low, high = (float(group) for group in match.groups())
    return mean, low, high


HEADER = [
    "#",
    "method",
    "N",
    "≈ best",
    "pointing game ↑",
    "energy pointing game ↑",
    "deletion AUC ↓",
    "insertion AUC ↑",
    "ROAD combined ↑",
    "s / image",
]


def test_quick_run_writes_table_scores_and_figure(leaderboard: ModuleType, tmp_path: Path, capsys) -> None:
    status = leaderboard.main(
        ["--quick", "--output-dir", str(tmp_path), "--methods", "gradcam,randomcam,scorecam,legrad"]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "skipping legrad" in out and "ViT-only" in out

    markdown = (tmp_path / "leaderboard.md").read_text(encoding="utf-8")
    header, rows = _table_rows(markdown)
    assert header == HEADER
    assert sorted(row[1] for row in rows) == ["`gradcam`", "`randomcam` (baseline)", "`scorecam`"]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    quick = leaderboard.QUICK
    for row in rows:
        count = quick["n_slow"] if row[1] == "`scorecam`" else quick["n"]  # scorecam is a slow method
        assert row[2] == (f"{count}*" if count == quick["n_slow"] else f"{count}") + f" / {quick['n_perturbation']}"
        intervals = [_interval(cell) for cell in row[4:9]]
        for mean, low, high in intervals:
            assert low <= mean <= high
        (pointing, _, _), (energy, _, _), (deletion, _, _), (insertion, _, _), (road, _, _) = intervals
        assert pointing * count == pytest.approx(round(pointing * count))  # a share of hits
        assert 0 <= energy <= 1 and 0 <= deletion <= 1 and 0 <= insertion <= 1
        assert -0.5 <= road <= 0.5
        assert float(row[9]) >= 0  # four decimals: a fast method may show 0.0000
    assert rows[0][3] == "best" and all(row[3] in ("≈", "") for row in rows[1:])
    means = [_interval(row[4])[0] for row in rows]
    assert means == sorted(means, reverse=True)  # sorted by pointing game

    assert re.search(r"\d{4}-\d{2}-\d{2} · .+ cores.+torch \S+ · N = 8 held-out scenes", markdown)
    assert "percentiles=[50]" in markdown and "`legrad`" in markdown and "--quick" in markdown
    assert "(images/leaderboard.png)" in markdown and "(leaderboard_scores.csv)" in markdown
    png = tmp_path / "images" / "leaderboard.png"
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # Every per-image score, in CSV and JSON, agreeing with the table's means.
    with open(tmp_path / "leaderboard_scores.csv", encoding="utf-8", newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == [
        "method",
        "image",
        "label",
        "pointing_game",
        "energy_pointing_game",
        "deletion_auc",
        "insertion_auc",
        "road_combined",
    ]
    by_method = {name: [r for r in records if r["method"] == name] for name in ("gradcam", "randomcam", "scorecam")}
    assert [len(v) for v in by_method.values()] == [quick["n"], quick["n"], quick["n_slow"]]
    assert [r["image"] for r in by_method["gradcam"]] == [str(i) for i in range(quick["n"])]
    gradcam = by_method["gradcam"]
    assert all(r["deletion_auc"] == "" for r in gradcam[quick["n_perturbation"] :])  # not run on those scenes
    document = json.loads((tmp_path / "leaderboard_scores.json").read_text(encoding="utf-8"))
    assert document["settings"]["n"] == quick["n"] and len(document["labels"]) == quick["n"]
    assert [r["label"] for r in gradcam] == [str(label) for label in document["labels"]]
    for entry in document["methods"]:
        row = next(row for row in rows if row[1].split()[0] == f"`{entry['method']}`")
        scores = entry["scores"]
        for cell, metric in zip(
            row[4:9], ("pointing_game", "energy_pointing_game", "deletion_auc", "insertion_auc", "road_combined")
        ):
            assert _interval(cell)[0] == pytest.approx(sum(scores[metric]) / len(scores[metric]), abs=5e-4)
            assert (
                entry["summary"][metric]["low"] <= entry["summary"][metric]["mean"] <= entry["summary"][metric]["high"]
            )
        csv_values = [float(r["insertion_auc"]) for r in by_method[entry["method"]][: entry["n_perturbation"]]]
        assert csv_values == scores["insertion_auc"]
        assert (entry["versus_best"] is None) == (entry["rank"] == 1)


def test_rows_are_repeatable_sorted_and_compared(leaderboard: ModuleType) -> None:
    config = leaderboard.LeaderboardConfig(
        n=6,
        n_slow=3,
        n_perturbation=2,
        methods=["randomcam", "gradcam", "hirescam"],
        steps=2,
        road_percentiles=(50,),
        resamples=500,
        out_md=None,
        out_figure=None,
        out_csv=None,
        out_json=None,
        verbose=False,
    )
    first = leaderboard.run_leaderboard(config)
    second = leaderboard.run_leaderboard(config)
    assert [r.name for r in first.results] == [r.name for r in second.results]
    for a, b in zip(first.results, second.results):
        assert a.intervals == b.intervals and a.versus_best == b.versus_best
        for metric, _, _ in leaderboard.METRICS:
            np.testing.assert_array_equal(a.scores[metric], b.scores[metric])
            assert getattr(a, metric) == pytest.approx(float(np.mean(a.scores[metric])))
            assert len(a.scores[metric]) == (2 if metric in ("deletion_auc", "insertion_auc", "road_combined") else 6)
    assert all(r.seconds_per_image > 0 for r in first.results)
    keys = [(-r.pointing_game, -r.energy_pointing_game) for r in first.results]
    assert keys == sorted(keys)
    assert first.cams["gradcam"].shape == (6, 64, 64)
    # gradcam and hirescam give bitwise-identical maps here: the perturbation scores are computed once.
    results = {r.name: r for r in first.results}
    assert {results["gradcam"].shares_scores_with, results["hirescam"].shares_scores_with} == {None, "gradcam"}
    # The best has no comparison; a method equal to it on every image is "≈".
    assert first.results[0].versus_best is None and first.results[0].like_best
    for result in first.results[1:]:
        assert result.versus_best is not None
        if np.array_equal(result.scores["pointing_game"], first.results[0].scores["pointing_game"]):
            assert result.like_best and result.versus_best.difference.width == 0


def test_slow_methods_use_fewer_scenes(leaderboard: ModuleType) -> None:
    config = leaderboard.LeaderboardConfig(
        n=5,
        n_slow=2,
        n_perturbation=3,
        methods=["gradcam", "scorecam"],
        steps=2,
        road_percentiles=(50,),
        resamples=200,
        out_md=None,
        out_figure=None,
        out_csv=None,
        out_json=None,
        verbose=False,
    )
    board = leaderboard.run_leaderboard(config)
    results = {r.name: r for r in board.results}
    assert (results["gradcam"].n, results["gradcam"].n_perturbation) == (5, 3)
    assert (results["scorecam"].n, results["scorecam"].n_perturbation) == (2, 2)
    assert "scorecam" in leaderboard.SLOW_METHODS
    assert "| 2* / 2 |" in leaderboard.format_table(board.results)


def test_bad_arguments(leaderboard: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown method"):
        leaderboard.select_methods(["gradcam", "nosuchcam"])
    with pytest.raises(ValueError, match="no CAM method left"):
        leaderboard.select_methods(["legrad"])
    with pytest.raises(ValueError, match="repeat"):
        leaderboard.select_methods(["gradcam", "GradCAM"])
    with pytest.raises(TypeError, match="methods"):
        leaderboard.select_methods("gradcam")
    with pytest.raises(ValueError, match="training seed"):
        leaderboard.run_leaderboard(
            leaderboard.LeaderboardConfig(n=2, seed=0, out_md=None, out_figure=None, verbose=False)
        )
    with pytest.raises(ValueError, match="confidence"):
        leaderboard.run_leaderboard(
            leaderboard.LeaderboardConfig(n=2, confidence=1.5, out_md=None, out_figure=None, verbose=False)
        )
    with pytest.raises(ValueError, match="n_slow"):
        leaderboard.run_leaderboard(leaderboard.LeaderboardConfig(n=2, n_slow=0, out_md=None, verbose=False))
    with pytest.raises(ValueError, match="road_percentiles"):
        leaderboard.run_leaderboard(
            leaderboard.LeaderboardConfig(n=2, road_percentiles=(0,), out_md=None, out_figure=None, verbose=False)
        )
    assert (
        leaderboard.main(
            ["--n", "0", "--out-md", str(tmp_path / "x.md"), "--out-figure", str(tmp_path / "x.png"), "--quiet"]
        )
        == 2
    )
    assert not (tmp_path / "x.md").exists()
    assert leaderboard.main(["--quick", "--resamples", "0", "--output-dir", str(tmp_path), "--quiet"]) == 2
    assert not (tmp_path / "leaderboard_scores.csv").exists()
