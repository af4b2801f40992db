"""Cold start: what ``import pytorch_grad_cam`` costs beyond ``import torch``, in fresh processes.

Each repeat starts a new interpreter for each statement, interleaved (torch, torch + torchvision, the package), and
reads ``python -X importtime``'s cumulative total of the top-level import. Prints the medians and the modules the
package itself imports that take longest.

    python benchmarks/bench_import.py             # 5 repeats
    python benchmarks/bench_import.py --repeats 9 --top 15
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def import_profile(statement: str) -> list[tuple[int, int, str]]:
    """``(self µs, cumulative µs, indented module name)`` rows of ``python -X importtime -c statement``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, env=env, check=True
    )
    rows = []
    for line in result.stderr.splitlines():
        match = LINE.match(line)
        if match:
            rows.append((int(match.group(1)), int(match.group(2)), match.group(3) + match.group(4)))
    return rows


def top_level_total(rows: list[tuple[int, int, str]]) -> float:
    """Seconds of the top-level imports (indent of one space), summed."""
    return sum(cumulative for _, cumulative, name in rows if not name.startswith("  ")) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=10, help="slowest third-party modules to list")
    args = parser.parse_args()
    base, vision, package = [], [], []
    last: list[tuple[int, int, str]] = []
    for _ in range(args.repeats):
        base.append(top_level_total(import_profile("import torch")))
        vision.append(top_level_total(import_profile("import torch, torchvision")))
        last = import_profile("import pytorch_grad_cam")
        package.append(top_level_total(last))
    b, v, p = statistics.median(base), statistics.median(vision), statistics.median(package)
    print(f"fresh processes, median of {args.repeats} (interleaved), python -X importtime totals")
    print(f"  import torch              : {b:.2f} s")
    print(f"  import torch, torchvision : {v:.2f} s")
    print(f"  import pytorch_grad_cam   : {p:.2f} s  (+{p - b:.2f} s beyond torch)")
    heavy = ("sklearn", "scipy", "cv2", "ttach", "tqdm", "matplotlib", "torchvision", "PIL")
    loaded = {name.strip(): cumulative / 1e6 for _, cumulative, name in last if name.strip() in heavy}
    print("  of which (cumulative, last run): " + (", ".join(f"{k} {v:.2f} s" for k, v in loaded.items()) or "none"))
    slowest = sorted(
        ((cumulative, name.strip()) for _, cumulative, name in last if name.strip().startswith("pytorch_grad_cam")),
        reverse=True,
    )[: args.top]
    print("  slowest modules of the package (cumulative, last run):")
    for cumulative, name in slowest:
        print(f"    {cumulative / 1e6:6.3f} s  {name}")


if __name__ == "__main__":
    main()
