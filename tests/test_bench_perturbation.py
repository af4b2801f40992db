"""benchmarks/bench_perturbation.py: every AblationCAM case builds, and the AblationCAM section runs and reports the
shortcut (no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from conftest import load_script
from torch import nn


def test_every_ablation_case_names_a_layer_of_its_model():
    bench = load_script("bench_perturbation")
    threads = torch.get_num_threads()
    for case, (name, _, _) in bench.ABLATION_CASES.items():
        model, layer, x, targets = bench._ablation_setup(case, 32, threads)
        assert type(model).__name__.lower().startswith(name.rstrip("0123456789")), case
        assert isinstance(layer, nn.Module) and any(module is layer for module in model.modules()), case
        assert tuple(x.shape) == (2, 3, 32, 32) and len(targets) == 2
    assert torch.get_num_threads() == threads


def test_the_ablation_section_runs_and_reports_the_shortcut():
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_perturbation.py"
    command = [sys.executable, str(script), "--quick", "--only", "ablation", "--no-full", "--threads", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    row = next(line for line in result.stdout.splitlines() if line.strip().startswith("resnet18.layer4"))
    assert " short " in row  # avgpool + fc after layer4: the shortcut, no ablated copies
