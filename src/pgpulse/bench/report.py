"""The run's outputs: ``latest.json`` (machine-readable, what ``--compare`` reads), ``latest.md`` (the table
for a README) and one PNG per pair with the latency distribution of each variant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pgpulse.bench.stats import PairResult


def _fmt_ms(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def _fmt_ratio(x: float) -> str:
    return f"{x:.3f}" if x < 10 else f"{x:,.1f}"


def _fmt_value(value: float, unit: str) -> str:
    return f"{_fmt_ratio(value)}{unit}"


def _cpu(variant: dict[str, Any]) -> str:
    cpu = variant["extra"].get("server_cpu_ms")
    return "" if cpu is None else f"{cpu:.2f}"


def _tail(variant: dict[str, Any]) -> str:
    """p99/p50 for HTTP rows (served by the app under load); blank for in-process loops, where it means little."""
    if variant["concurrency"] is None or variant["unit"] != "req/s" or not variant["p50_ms"]:
        return ""
    return f"{variant['p99_ms'] / variant['p50_ms']:.1f}×"


def render_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"# pgpulse bench — {result['started_utc']} ({'quick' if result['quick'] else 'full'} run, "
        f"{result['duration_s']:.0f} s)",
        "",
        f"Machine: {m['cores']} cores, {m['cpu_model']}; PostgreSQL {m['postgresql']}; Python {m['python']}; "
        f"load average at start {m['loadavg_start']}, at end {m.get('loadavg_end')} (other processes share the CPU).",
        f"Data: {result['data']['posts']:,} posts, {result['data']['comments']:,} comments. Figures are over all "
        "rounds; p99/p50 (HTTP rows) = how far the slowest 1% is from the typical request; "
        "spread = (max − min) / median of the rounds' p50; App CPU = CPU time of the uvicorn process per "
        "response, which other processes on the machine barely move. Ratios compare variants of the same run.",
        "",
    ]
    if result["targets"]:
        lines += ["## Targets", "", "| Target | Figure | Result |", "|---|---:|---|"]
        for t in result["targets"]:
            figure = _fmt_value(t["value"], t["unit"])
            reason = t.get("reason") or "quick run"
            verdict = ("PASS" if t["passed"] else "MISS") if t.get("judged", True) else f"not judged ({reason})"
            lines.append(f"| {t['name']} | {figure} | {verdict} |")
        lines.append("")
    lines += [
        "## Results",
        "",
        "| Pair | Variant | c | Queries | p50 ms | p95 ms | p99 ms | p99/p50 | Throughput | Spread | App CPU ms/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for pair in result["pairs"].values():
        for v in pair["variants"]:
            lines.append(
                f"| {pair['name']} | {v['name']} | {v['concurrency'] or ''} | "
                f"{'' if v['queries'] is None else v['queries']} | {_fmt_ms(v['p50_ms'])} | {_fmt_ms(v['p95_ms'])} | "
                f"{_fmt_ms(v['p99_ms'])} | {_tail(v)} | {v['throughput']:,.0f} {v['unit']} | {v['spread_pct']:.0f}% | "
                f"{_cpu(v)} |"
            )
    lines += ["", "## Ratios (after / before)", ""]
    for pair in result["pairs"].values():
        ratios = "; ".join(f"{k} **{_fmt_ratio(v)}**" for k, v in pair["ratios"].items())
        lines.append(f"- **{pair['name']}**: {ratios}")
    lines += ["", "## Notes", ""]
    for pair in result["pairs"].values():
        if pair.get("error"):
            lines.append(f"- **{pair['name']}**: FAILED: {pair['error']}")
        for note in pair["notes"]:
            lines.append(f"- **{pair['name']}**: {note}")
    plots = [f for f in result.get("files", []) if f.endswith(".png")]
    if plots:
        lines += ["", "## Latency distributions", ""]
        lines += [f"![{Path(p).stem}]({Path(p).name})" for p in plots]
    return "\n".join(lines) + "\n"


def plot_pair(pair: PairResult, path: Path) -> bool:
    """A horizontal box plot per variant (log scale: variants differ by orders of magnitude)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    variants = [v for v in pair.variants if v.sample_ms]
    if not variants:
        return False
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(variants) + 1.6))
    data, labels = [v.sample_ms for v in variants], [v.key for v in variants]
    try:
        ax.boxplot(data, orientation="horizontal", whis=(5, 95), showfliers=False, tick_labels=labels)
    except TypeError:  # matplotlib < 3.10
        ax.boxplot(data, vert=False, whis=(5, 95), showfliers=False, labels=labels)  # type: ignore[call-arg]
    # p99 as a red tick: the tail the p5-p95 whiskers leave out (the figure the p99/p50 column is about)
    ax.scatter([v.p99_ms for v in variants], range(1, len(variants) + 1), marker="x", color="tab:red", label="p99")
    ax.legend(loc="lower right", fontsize=8)
    ax.invert_yaxis()  # first variant on top, in table order
    ax.set_xscale("log")
    ax.set_xlabel("latency, ms (log scale; box = p25–p75, whiskers = p5–p95, × = p99)")
    ax.set_title(pair.title, fontsize=10)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_outputs(result: dict[str, Any], pairs: list[PairResult], out: Path) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    for pair in pairs:
        png = out / f"{pair.name}.png"
        if plot_pair(pair, png):
            files.append(str(png))
    json_path, md_path = out / "latest.json", out / "latest.md"
    files += [str(json_path), str(md_path)]
    result["files"] = [Path(f).name for f in files]  # relative: the results directory is committed
    json_path.write_text(json.dumps(result, indent=2) + "\n")
    md_path.write_text(render_markdown(result))
    return files


def compare_runs(old: dict[str, Any], new: dict[str, Any]) -> str:
    """Markdown: every ratio present in both runs, old → new and the relative change."""
    lines = [
        f"## Compared with the run of {old.get('started_utc', '?')}",
        "",
        "| Pair | Ratio | Before | Now | Change |",
        "|---|---|---:|---:|---:|",
    ]
    shown = 0
    for name, pair in new["pairs"].items():
        before = old["pairs"].get(name, {}).get("ratios", {})
        for key, value in pair["ratios"].items():
            if key not in before:
                continue
            was = float(before[key])
            change = f"{(value - was) / was * 100:+.1f}%" if was else "n/a"
            lines.append(f"| {name} | {key} | {_fmt_ratio(was)} | {_fmt_ratio(value)} | {change} |")
            shown += 1
    if not shown:
        lines.append("| — | no ratio in common (different --only?) | | | |")
    return "\n".join(lines) + "\n"
