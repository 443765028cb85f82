"""bench/docs.py names the command behind every results file a bench module writes by default."""

from __future__ import annotations

import re
from pathlib import Path

from bench.docs import COMMANDS, provenance

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_every_default_results_file_has_its_command():
    written = set()
    for module in BENCH.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        written |= set(re.findall(r'"results" / "([a-z0-9_]+)\.json"', text))
        written |= set(re.findall(r"bench/results/([a-z0-9_]+)\.json", text))
    assert {"multilabel", "multilabel_recipe", "multilabel_trust", "multilabel_audit"} <= written
    assert sorted(written - set(COMMANDS)) == []


def test_a_multi_label_results_file_names_its_command(tmp_path):
    path = tmp_path / "multilabel_audit.json"
    path.write_text("{}", encoding="utf-8")
    line = provenance(path, {"date": "2026-12-06"})
    assert line.startswith("`python -m bench.multilabel_audit --seeds 5 --planted 20`, written 2026-12-06")
