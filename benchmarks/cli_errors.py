"""How fast user mistakes come back: wall time of commands that must fail at once with one `Error:` line
(missing CLIP weights offline, an unknown model, pretrained weights not in the hub cache, a missing
weights file, a missing knowledge base), each as the installed console script in a fresh process, against
the baseline of the same process start measured in the same run (`neurflow-kb --version` and
`neurflow-kb models`, which import the same modules an error path does).

The tests assert the behaviour that makes these quick (no name lookup or connection, no model built before
the error: tests/unit/test_labels.py, tests/unit/test_models.py); this measures what it costs. Prints one
JSON line per case: median and max seconds over `--repeat` runs, exit code, and the ratio of the median
to each baseline's median.

    python benchmarks/cli_errors.py                  # 5 runs per case (about 2 min on this shared CPU)
    python benchmarks/cli_errors.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # neurflow_kb_dev (not installed)

from neurflow_kb_dev.cli_runs import CONSOLE_SCRIPT  # noqa: E402
from neurflow_kb_dev.synthetic import synthetic_circuit  # noqa: E402

BASELINES = ("version", "models")


def cases(tmp: Path) -> dict[str, tuple[list[str], int, str]]:
    """name -> (arguments of `neurflow-kb`, the exit code it must give, what its stderr must say)."""
    art = synthetic_circuit(3, model="toy", weights="random", chain=(("a", 8), ("b", 12), ("logits", 5)),
                            nodes_per_layer=(2, 6), tau=3).save(tmp / "art")
    images = tmp / "images"
    images.mkdir()
    circuit = ["circuit", "--images", str(images), "--class", "0", "--out", str(tmp / "out")]
    return {
        "version": (["--version"], 0, ""),
        "models": (["models"], 0, ""),
        "label-missing-clip-weights": (["label", str(art)], 2, "are not cached"),
        "unknown-model": ([*circuit, "--model", "resnet9"], 2, "unknown model 'resnet9'"),
        "pretrained-not-cached": ([*circuit, "--model", "resnet50"], 2, "not in the torch hub cache"),
        "missing-weights-file": ([*circuit, "--model", "resnet18", "--weights", str(tmp / "none.pth")], 2,
                                 "weights file not found"),
        "missing-knowledge-base": (["query", "drivers", "1", "--store", str(tmp / "none.lbug")], 2,
                                   "no knowledge base at"),
    }


def offline_env(tmp: Path) -> dict[str, str]:
    """No cached weights anywhere and downloads off, as on a machine without the caches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "HF_HUB_CACHE", "HUGGINGFACE"))}
    return env | {"HF_HUB_OFFLINE": "1", "HOME": str(tmp / "home"), "HF_HOME": str(tmp / "hf"),
                  "XDG_CACHE_HOME": str(tmp / "cache"), "TORCH_HOME": str(tmp / "torch")}


def time_case(args: list[str], code: int, needle: str, env: dict[str, str], repeat: int) -> dict:
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run = subprocess.run([CONSOLE_SCRIPT, *args], env=env, capture_output=True, text=True, timeout=600)
        seconds.append(time.perf_counter() - t0)
        if run.returncode != code:
            raise SystemExit(f"`neurflow-kb {' '.join(args)}` exited {run.returncode}, not {code}: "
                             f"{run.stderr[-500:]}")
        one_line = run.stderr.startswith("Error: ") and len(run.stderr.strip().splitlines()) == 1
        if code == 2 and not (one_line and needle in run.stderr):
            raise SystemExit(f"`neurflow-kb {' '.join(args)}` did not print one Error line with {needle!r}: "
                             f"{run.stderr[-500:]}")
    return {"median_s": round(statistics.median(seconds), 3), "max_s": round(max(seconds), 3),
            "exit_code": code, "repeat": repeat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="Runs per case (median and max reported).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-errors-") as d:
        tmp = Path(d)
        env = offline_env(tmp)
        table = cases(tmp)
        results = {name: time_case(a, code, needle, env, args.repeat)
                   for name, (a, code, needle) in table.items()}
    load = os.getloadavg()[0]
    for name, r in results.items():
        line = {"benchmark": "cli-errors", "case": name, **r, "load1": round(load, 2)}
        for base in BASELINES:
            line[f"ratio_to_{base}"] = round(r["median_s"] / results[base]["median_s"], 3)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
