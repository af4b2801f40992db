"""benchmarks/leaderboard.py in a tiny configuration: the table's columns and rows, numbers in range, the figure."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

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


def test_tiny_run_writes_table_and_figure(leaderboard: ModuleType, tmp_path: Path, capsys) -> None:
    md, png = tmp_path / "board.md", tmp_path / "img" / "board.png"
    status = leaderboard.main(
        [
            "--n",
            "2",
            "--methods",
            "gradcam,randomcam,legrad",
            "--steps",
            "4",
            "--road-percentiles",
            "50",
            "--figure-images",
            "2",
            "--out-md",
            str(md),
            "--out-figure",
            str(png),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "skipping legrad" in out and "ViT-only" in out

    markdown = md.read_text(encoding="utf-8")
    header, rows = _table_rows(markdown)
    assert header == [
        "#",
        "method",
        "pointing game ↑",
        "energy pointing game ↑",
        "deletion AUC ↓",
        "insertion AUC ↑",
        "ROAD combined ↑",
        "s / image",
    ]
    assert sorted(row[1] for row in rows) == ["`gradcam`", "`randomcam` (baseline)"]
    assert [row[0] for row in rows] == ["1", "2"]
    values = [[float(cell) for cell in row[2:]] for row in rows]
    for pointing, energy, deletion, insertion, road, seconds in values:
        assert pointing in (0.0, 0.5, 1.0)  # two scenes
        assert 0 <= energy <= 1 and 0 <= deletion <= 1 and 0 <= insertion <= 1
        assert -0.5 <= road <= 0.5
        assert seconds >= 0  # four decimals: a fast method may show 0.0000
    assert values[0][0] >= values[1][0]  # sorted by pointing game

    assert re.search(r"\d{4}-\d{2}-\d{2} · .+ cores.+torch \S+ · N = 2 held-out scenes", markdown)
    assert "percentiles=[50]" in markdown and "`legrad`" in markdown
    assert "(img/board.png)" in markdown
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_are_repeatable_and_sorted(leaderboard: ModuleType) -> None:
    config = leaderboard.LeaderboardConfig(
        n=2,
        methods=["randomcam", "gradcam"],
        steps=2,
        road_percentiles=(50,),
        out_md=None,
        out_figure=None,
        verbose=False,
    )
    first = leaderboard.run_leaderboard(config)
    second = leaderboard.run_leaderboard(config)
    assert [r.name for r in first.results] == [r.name for r in second.results]
    for a, b in zip(first.results, second.results):
        assert (a.pointing_game, a.energy_pointing_game, a.deletion_auc, a.insertion_auc, a.road_combined) == (
            b.pointing_game,
            b.energy_pointing_game,
            b.deletion_auc,
            b.insertion_auc,
            b.road_combined,
        )
    assert all(r.seconds_per_image > 0 for r in first.results)
    keys = [(-r.pointing_game, -r.energy_pointing_game) for r in first.results]
    assert keys == sorted(keys)
    assert first.cams["gradcam"].shape == (2, 64, 64)


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
