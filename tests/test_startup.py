"""The quick commands stay quick: a warm extract, info and train-head import neither torchvision (whose ops import
torch._dynamo) nor scikit-learn; what they compute is checked elsewhere."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

HEAVY = ("torchvision", "torch._dynamo", "sklearn", "scipy")


def heavy_modules_after(*args: str) -> list[str]:
    """The HEAVY modules loaded by running cli.py with args in a fresh process."""
    code = (
        "import json, sys, cli\n"
        "try:\n"
        f"    cli.cli({list(args)!r}, prog_name='headstart')\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_warm_extract_info_and_train_head_skip_the_heavy_imports(tiny_dataset, tmp_path, weights_file):
    cache = tmp_path / "cache"
    extract = [
        "extract",
        "--data",
        str(tiny_dataset),
        "--cache",
        str(cache),
        "--weights",
        str(weights_file),
        "--workers",
        "0",
        "-q",
    ]
    assert "torchvision" in heavy_modules_after(*extract)  # cold: the backbone is built
    assert heavy_modules_after(*extract) == []  # warm: nothing to compute, nothing heavy imported
    assert heavy_modules_after("train-head", "--cache", str(cache), "-q") == []
    assert heavy_modules_after("info", "--cache", str(cache), "-q") == []
