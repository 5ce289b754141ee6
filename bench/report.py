"""bench/RESULTS.md from the figures bench/run.py gathered: settings, tables, targets met or not."""

from __future__ import annotations

RACE, EVERY, WINNERS = "claim_race", "every claim (1 winner + losers per round)", "winning claims"
FLOOR = "commit -> client, from HTTP answer (floor)"
CEILING = "commit -> client, from event `at` (ceiling)"


def _number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}".replace(",", " ")


def _sizes(sizes: dict) -> str:
    names = {"customer": "customers", "contact": "contacts", "opportunity": "opportunities"}
    return ", ".join(f"{_number(count)} {names[name]}" for name, count in sizes.items())


def _seeded(seconds: float | None) -> str:
    return "reused: seeded before the run" if seconds is None else f"seeded in {seconds:.0f} s"


def _screens(backend: dict) -> list[str]:
    lines = [
        "| screen | clients | requests/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, levels in backend["screens"].items():
        for clients, r in levels.items():
            lines.append(
                f"| {label} | {clients} | {r['rps']} | {r['p50']} | {r['p99']} | {r['errors']} |"
            )
    return lines


def _raw(backend: dict) -> tuple[list[str], float]:
    """The customer list against the raw baseline, and the lowest Meihua/raw ratio."""
    meihua = backend["screens"]["customer list page (50 rows, nested)"]
    lines = [
        "| clients | Meihua req/s | raw req/s | Meihua / raw | Meihua p50 / p99 ms "
        "| raw p50 / p99 ms |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for clients in meihua:
        m, r = meihua[clients], backend["raw"][clients]
        ratio = m["rps"] / r["rps"] if r["rps"] else 0
        ratios.append(ratio)
        lines.append(
            f"| {clients} | {m['rps']} | {r['rps']} | {ratio:.0%} | {m['p50']} / {m['p99']} | "
            f"{r['p50']} / {r['p99']} |"
        )
    same = backend["raw_same_json"]
    lines.append("")
    lines.append(
        "Same JSON as Meihua for pages 1 and 2: "
        + ("yes." if not same else f"**no**: {'; '.join(same)}")
    )
    return lines, min(ratios)


def _deep(deep: dict) -> tuple[list[str], float]:
    first, label = deep["page 1"], f"page {deep['page']}"
    far = deep[label]
    ratio = far["p50"] / first["p50"]
    lines = [
        "| page | p50 ms | p99 ms | requests |",
        "|---|---:|---:|---:|",
        f"| page 1 | {first['p50']} | {first['p99']} | {first['n']} |",
        f"| {label} ({deep['rows']} rows) | {far['p50']} | {far['p99']} | {far['n']} |",
        "",
        f"{label} / page 1 (p50): **{ratio:.2f}×**",
    ]
    return lines, ratio


def _live(live: dict) -> list[str]:
    race, events = live[RACE], live["events"]
    lines = ["| measure | p50 ms | p99 ms | max ms | n |", "|---|---:|---:|---:|---:|"]
    rows = {
        f"claim race, {race['claimers']} at once, every claim": race["latency_ms"][EVERY],
        "claim race, the winning claim": race["latency_ms"][WINNERS],
    } | {
        f"pool event to {events['subscribers']} subscribers, {name}": events["latency_ms"][key]
        for name, key in (
            ("from HTTP answer (floor)", FLOOR),
            ("from event `at` (ceiling)", CEILING),
        )
    }
    for label, s in rows.items():
        lines.append(f"| {label} | {s['p50']} | {s['p99']} | {s['max']} | {s['n']} |")
    winners = "exactly 1 per round" if not race["problems"] else "; ".join(race["problems"][:3])
    lines += [
        "",
        f"- Claim race: {race['rounds']} rounds; winners: {winners}; "
        f"{race['claims_per_s']} claims/s.",
        f"- Fan-out: delivered {events['delivered']} of {events['expected']}, "
        f"{events['duplicates']} duplicated; "
        f"server CPU {events['server_cpu_ms_per_event']} ms per event.",
        f"- Memory: server RSS {events['server_rss_mb'][0]} MB before the sockets, "
        f"{events['server_rss_mb'][1]} MB with {events['subscribers']} live: "
        f"**{events['server_kb_per_subscriber']} kB per connection**.",
    ]
    return lines


def _verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def markdown(results: dict, python: str) -> str:
    args, sqlite, postgres = results["args"], results["sqlite"], results["postgres"]
    large = postgres["large"]
    out = [
        "# Benchmark results",
        "",
        "Written by `python bench/run.py"
        + (" --quick" if args["quick"] else "")
        + '` (bench/README.md, "Performance at scale", says how to read it). Do not edit by hand.',
        "",
        f"- Date: {results['date']}; revision {results['revision']}; the run took "
        f"{results['minutes']} minutes.",
        f"- Machine: {results['machine']}, {results['memory']}; "
        f"PostgreSQL {results['postgres_version']}.",
        f"- Load average (1, 5, 15 min) before: {results['load_before']}, after: "
        f"{results['load_after']}. Client, server and database share the machine.",
        "- Server: `meihua serve`, one worker, BROADCAST_URL=memory://, no per-user operation "
        "budget (MEIHUA_OPERATIONS_PER_MINUTE=0). Viewer: `demo.east`, a Sales Manager seeing "
        "about 70 % of the records.",
        f"- Load: each screen {args['seconds']} s per concurrency after one warm-up request; "
        "latencies are nearest-rank percentiles in ms.",
        f"- SQLite demo: {_sizes(sqlite['sizes'])} ({_seeded(sqlite['seeded_s'])}); "
        f"PostgreSQL demo: {_sizes(postgres['sizes'])} ({_seeded(postgres['seeded_s'])}); "
        f"large PostgreSQL: {_sizes(large['sizes'])} ({_seeded(large['seeded_s'])}).",
        "",
    ]
    targets = []
    for name, backend in (("SQLite", sqlite), ("PostgreSQL", postgres)):
        raw_lines, ratio = _raw(backend)
        out += [f"## {name}", "", "### 1. Screens", "", *_screens(backend), ""]
        out += ["### 2. Customer list against the raw baseline (bench/raw_app.py)", ""]
        out += [*raw_lines, ""]
        targets.append(
            (
                f"{name}: list page with nested relations ≥ 50 % of raw req/s",
                f"lowest {ratio:.0%}",
                ratio >= 0.5,
            )
        )
        out += ["### 3 and 4. Claim race and live pool events (bench/realtime.py)", ""]
        out += [*_live(backend["live"]), ""]
        race = backend["live"][RACE]["latency_ms"][EVERY]["p99"]
        winners_ok = not backend["live"][RACE]["problems"]
        targets.append(
            (
                f"{name}: claim race, one winner and p99 < 50 ms",
                f"p99 {race} ms, {'one winner' if winners_ok else 'WRONG winners'}",
                winners_ok and race < 50,
            )
        )
        fan_out = backend["live"]["events"]["latency_ms"][CEILING]["p99"]
        subscribers = backend["live"]["events"]["subscribers"]
        targets.append(
            (
                f"{name}: event fan-out p99 < 100 ms at {subscribers} subscribers",
                f"p99 {fan_out} ms",
                fan_out is not None and fan_out < 100,
            )
        )
        deep = backend["deep"]
        deep_lines, deep_ratio = _deep(deep)
        out += [
            f"### 6. Page 1 against page {deep['page']} ({_number(backend['visible'])} "
            "customers visible)",
            "",
            *deep_lines,
            "",
        ]
        targets.append(
            (
                f"{name}: page {deep['page']} within 2× of page 1",
                f"{deep_ratio:.2f}×",
                deep_ratio <= 2,
            )
        )
    recycled = large["recycle"]
    deep = large["deep"]
    deep_lines, deep_ratio = _deep(deep)
    out += [
        f"## PostgreSQL, {_number(large['sizes']['customer'])} customers",
        "",
        "### 5. Recycle pass",
        "",
        f"Rules: no follow-up for 180 days (not dealt) or 365 days (dealt). Of "
        f"{_number(recycled['customers'])} customers, {_number(recycled['owned'])} had an owner; "
        + (
            f"**the pass failed** after {recycled['seconds']} s and rolled back: "
            f"`{recycled['failure']}`."
            if recycled["failure"]
            else f"one pass recycled **{_number(recycled['recycled'])}** and warned the owners "
            f"of {_number(recycled['warned'])} in **{recycled['seconds']} s**. The run then put "
            "every changed row back."
        ),
        "",
        f"### 6. Page 1 against page {deep['page']} ({_number(deep['visible'])} customers visible)",
        "",
        *deep_lines,
        "",
    ]
    targets.append(
        (
            f"PostgreSQL: page {deep['page']} of {_number(deep['visible'])} within 2× of page 1",
            f"{deep_ratio:.2f}×",
            deep_ratio <= 2,
        )
    )
    targets.append(
        (
            f"PostgreSQL: recycle pass over {_number(recycled['customers'])} customers < 10 s",
            "failed" if recycled["failure"] else f"{recycled['seconds']} s",
            not recycled["failure"] and recycled["seconds"] < 10,
        )
    )
    out += ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    out += [f"| {target} | {figure} | {_verdict(met)} |" for target, figure, met in targets]
    return "\n".join(out) + "\n"
