"""bench/run.py's pieces at a tiny size, so the benchmark command cannot rot.

Seeds a 300-customer demo on SQLite and on PostgreSQL and checks what the full run relies on:
the raw baseline answers the same JSON as Meihua, the screens load without errors, the deep
page's cursor lands where it should, and a recycle pass is measured and put back.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
POSTGRES = os.environ.get("MEIHUA_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(
    not POSTGRES, reason="the benchmark needs PostgreSQL: set MEIHUA_TEST_POSTGRES_URL"
)
TINY = ["--quick", "--customers", "300", "--large", "400", "--seconds", "0.2"]
TINY += ["--subscribers", "5", "--claimers", "3", "--rounds", "1", "--events", "2"]


def child(backend: str, tmp_path: Path) -> dict:
    """One backend's part of `bench/run.py`, as the full run starts it."""
    figures = tmp_path / f"{backend}.json"
    command = [sys.executable, str(BENCH / "run.py"), *TINY, "--postgres", POSTGRES]
    command += ["--backend", backend, "--json-to", str(figures)]
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent.parent))
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(figures.read_text())


def check_screens(figures: dict) -> None:
    assert figures["raw_same_json"] == []  # the raw baseline answers what Meihua answers
    for label, levels in figures["screens"].items():
        assert set(levels) == {"1", "8", "32"}, label
        assert all(level["errors"] == 0 and level["n"] > 0 for level in levels.values()), label
    assert all(level["errors"] == 0 for level in figures["raw"].values())
    deep = figures["deep"]
    assert deep["rows"] == 50 and deep["page"] == figures["visible"] // 50
    live = figures["live"]
    assert live["claim_race"]["problems"] == []
    assert live["events"]["delivered"] == live["events"]["expected"]


def test_sqlite_part(tmp_path):
    check_screens(child("sqlite", tmp_path))


def test_postgres_part_and_the_report(tmp_path):
    figures = child("postgres", tmp_path)
    check_screens(figures)
    recycled = figures["large"]["recycle"]
    assert recycled["customers"] == 400 and recycled["recycled"] > 0
    assert recycled["put_back"]  # the next run finds the same customers due
    sys.path.insert(0, str(BENCH))
    from report import markdown

    results = {
        "date": "today", "revision": "abc", "machine": "m", "memory": "1 GiB RAM",
        "postgres_version": "15", "load_before": [0], "load_after": [0], "minutes": 1,
        "args": vars(argparse.Namespace(quick=True, seconds=0.2)),
        "sqlite": figures, "postgres": figures,
    }  # fmt: skip
    text = markdown(results, "3.11")
    assert "Same JSON as Meihua for pages 1 and 2: yes." in text
    assert "recycle pass over 400 customers < 10 s" in text
