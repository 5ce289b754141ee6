"""bench/run.py's pieces at a tiny size, so the benchmark command cannot rot.

Runs both backends' parts of the command at once on a 300-customer demo and checks what the
full run relies on: the raw baseline answers the same JSON as Meihua, the screens load without
errors, the deep page's cursor lands where it should, the claim race has one winner, every
subscriber gets every event, and a recycle pass is measured and put back.
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
TINY = ["--quick", "--customers", "300", "--large", "0", "--seconds", "0.2", "--clients", "1,2"]
TINY += ["--subscribers", "5", "--claimers", "3", "--rounds", "1", "--events", "2"]


@pytest.fixture(scope="module")
def figures(tmp_path_factory) -> dict[str, dict]:
    """Each backend's part of `bench/run.py`, started as the full run starts it, side by side."""
    folder, children = tmp_path_factory.mktemp("bench"), {}
    env = dict(os.environ, PYTHONPATH=str(BENCH.parent.parent))
    for backend in ("sqlite", "postgres"):
        command = [sys.executable, str(BENCH / "run.py"), *TINY, "--postgres", POSTGRES]
        command += ["--backend", backend, "--json-to", str(folder / f"{backend}.json")]
        children[backend] = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    for child in children.values():
        output, _ = child.communicate(timeout=900)
        assert child.returncode == 0, output[-4000:]
    return {backend: json.loads((folder / f"{backend}.json").read_text()) for backend in children}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_screens_raw_baseline_deep_page_and_live_events(figures, backend):
    measured = figures[backend]
    assert measured["raw_same_json"] == []  # the raw baseline answers what Meihua answers
    for label, levels in measured["screens"].items():
        assert set(levels) == {"1", "2"}, label
        assert all(level["errors"] == 0 and level["n"] > 0 for level in levels.values()), label
    assert all(level["errors"] == 0 for level in measured["raw"].values())
    deep = measured["deep"]
    assert deep["rows"] == 50 and deep["page"] == measured["visible"] // 50 > 1
    live = measured["live"]
    assert live["claim_race"]["problems"] == []
    assert live["events"]["delivered"] == live["events"]["expected"]


def test_recycle_pass_and_the_report(figures):
    recycled = figures["postgres"]["large"]["recycle"]
    assert recycled["customers"] == 300 and recycled["recycled"] > 0
    assert recycled["put_back"]  # the next run finds the same customers due
    sys.path.insert(0, str(BENCH))
    from report import markdown

    results = {
        "date": "today", "revision": "abc", "machine": "m", "memory": "1 GiB RAM",
        "postgres_version": "15", "load_before": [0], "load_after": [0], "minutes": 1,
        "args": vars(argparse.Namespace(quick=True, seconds=0.2)),
        "sqlite": figures["sqlite"], "postgres": figures["postgres"],
    }  # fmt: skip
    text = markdown(results, "3.11")
    assert "Same JSON as Meihua for pages 1 and 2: yes." in text
    assert "recycle pass over 300 customers < 10 s" in text
