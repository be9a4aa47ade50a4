"""Rendering rt-bench results: a rich table, markdown, and a PNG latency plot."""

from __future__ import annotations

from pathlib import Path

from .tables import markdown_section, print_section


def _conditions(result: dict) -> list[dict]:
    if "runs" in result:
        return [c for r in result["runs"] for c in _conditions(r)]
    if "conditions" in result:
        return list(result["conditions"].values())
    return [result]


def _x(v):
    return "—" if v is None else f"{v:.2f}×"


def seq_label(c: dict) -> str:
    """'24' for MoMKE conversations, 'a375/t50/v500' for DERL's per-modality sequences."""
    if c.get("seq_lens"):
        return "/".join(f"{k[0]}{v}" for k, v in c["seq_lens"].items())
    return str(c["seq_len"])


def latency_rows(result: dict, compact: bool = False):
    """Full rows for markdown; `compact` keeps what fits an 80-column terminal. p50 = the median
    of the rounds' medians, `rounds` their range; × = the median of the per-round ratios."""
    header = ["condition", "batch×seq", "variant", "p50 ms", "rounds ms", "p90 ms", "p99 ms", "min ms",
              "per s", "GFLOP/s", "of peak", "vs ref-eager", "vs ref-compiled", "vs ref-int8", "vs torch"]
    rows = []
    for c in _conditions(result):
        cond = "{" + ",".join(c["condition"]) + "}"
        for name, v in c["variants"].items():
            lat, rs = v["latency_ms"], v["rounds"]

            def vs(other):  # how many times faster than `other` (None when it did not run)
                if other not in c["variants"] or other == name:
                    return None
                return _paired(c["variants"][other]["rounds"]["p50s"], rs["p50s"])

            rows.append([cond, f"{c['batch']}×{seq_label(c)}", name, f"{rs['p50']:.2f}",
                         f"{rs['lo']:.2f}–{rs['hi']:.2f}", f"{lat['p90']:.2f}", f"{lat['p99']:.2f}",
                         f"{lat['min']:.2f}", f"{v['throughput_per_s']:.1f}", f"{v['gflops']:.1f}",
                         f"{100 * v['fraction_of_peak']:.0f}%", _x(vs("reference-eager")),
                         _x(vs("reference-compiled")), _x(vs("reference-int8")), _x(vs("torch"))])
    if compact:
        keep = [0, 2, 3, 4, 5, 11, 12, 13]
        short = {"condition": "cond", "vs ref-eager": "×eager", "vs ref-compiled": "×compiled",
                 "vs ref-int8": "×int8", "rounds ms": "rounds"}
        header = [short.get(header[i], header[i]) for i in keep]
        rows = [[r[i] for i in keep] for r in rows]
    return header, rows


def _paired(slow: list[float], fast: list[float]) -> float:
    """The median over rounds of slow/fast (both ran in every round)."""
    import statistics

    return statistics.median(s / f for s, f in zip(slow, fast))


def isolation_line(c: dict) -> str:
    iso = c.get("isolation", {})
    if iso.get("mode") == "processes":
        how = ("each variant in a process of its own (PyTorch variants each alone; anymodal's without "
               "torch imported)")
    else:
        how = "all variants in this one process, interleaved call by call (--in-process)"
    return (f"timing: {how}; {iso.get('rounds', '?')} alternating rounds; p50 = median of the rounds' "
            "medians, 'rounds' = their range, × = median of the per-round ratios")


def absent_lines(result: dict) -> list[str]:
    seen = {}
    for c in _conditions(result):
        seen.update(c.get("absent", {}))
    return [f"absent: {name} — {why}" for name, why in seen.items()]


def summary_lines(result: dict) -> list[str]:
    first = _conditions(result)[0]
    m = first["machine"]
    bb = first["bundle_bytes"]
    lines = [f"machine: {m['cpu']} ({m['cores']} cores), {first['threads']} threads, {m['timestamp']}",
             isolation_line(first),
             "versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
             f"large-matmul peak: {first['matmul_peak_gflops']:.1f} GFLOP/s (numpy fp32 GEMM, best of several, "
             "measured just before the timings)",
             *_busy_lines(first),
             f"bundle: fp32 {bb['fp32'] / 1e6:.1f} MB"
             + (f", fp16 {bb['fp16'] / 1e6:.1f} MB" if bb.get("fp16") else ", fp16 not exported"),
             f"peak RSS: {first['peak_rss_mb']:.0f} MB", *absent_lines(result)]
    for c in _conditions(result):
        lines.append(f"{{{','.join(c['condition'])}}}: params total {c['params']['total'] / 1e6:.2f} M, "
                     f"active {c['params']['active'] / 1e6:.2f} M, {c['macs'] / 1e6:.0f} M MACs "
                     f"(batch {c['batch']}, seq {seq_label(c)})")
    lines += overhead_lines(result)
    return lines


def overhead_lines(result: dict) -> list[str]:
    """Runtime.predict over a raw session.run on the same session (the runtime vs session-run rows)."""
    lines = []
    for c in _conditions(result):
        o = c.get("predict_overhead_ms")
        if o:
            # in-process both rows use one session; in worker processes, one session each, same options
            where = "same session" if c.get("isolation", {}).get("mode") != "processes" else "one process each"
            lines.append(f"{{{','.join(c['condition'])}}} B{c['batch']}×{seq_label(c)}: Runtime.predict − "
                         f"session.run ({where}, spinning {'on' if c.get('runtime_spinning') else 'off'}) "
                         f"p50 {o['p50']:+.3f} ms, per-round p50 {o['paired_p50']:+.3f} ms, "
                         f"min {o['min']:+.3f} ms ({o['rounds']} rounds)")
    return lines


def _busy_lines(c: dict) -> list[str]:
    load = c.get("machine_load")
    if not load:
        return []
    line = (f"machine load: {load['loadavg_1min']:.1f} (1-min average, {load['cores']} cores); matmul "
            f"best/median {load['peak_spread']:.2f}; latency spread p90/p50 shown per row")
    return [line] + (["WARNING: the machine was busy while measuring: absolute figures are noisy, "
                      "compare the ratios within this run"] if load["busy"] else [])


def print_result(result: dict, console) -> None:
    header, rows = latency_rows(result, compact=True)
    c = _conditions(result)[0]
    print_section(console, f"rt-bench — {c['model']}, batch {c['batch']}, seq {seq_label(c)}", header, rows,
                  summary_lines(result))


def markdown_report(result: dict) -> str:
    header, rows = latency_rows(result)
    return markdown_section("rt-bench", header, rows, summary_lines(result))


def plot_latency(result: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conds = _conditions(result)
    from .variants import ALL_VARIANTS

    names = sorted({n for c in conds for n in c["variants"]}, key=ALL_VARIANTS.index)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(conds) + 3), 4))
    width = 0.8 / max(1, len(names))
    for i, n in enumerate(names):
        xs, p50, err_lo, err_hi = [], [], [], []
        for j, c in enumerate(conds):
            if n in c["variants"]:
                xs.append(j + i * width)
                rs = c["variants"][n]["rounds"]
                p50.append(rs["p50"])
                err_lo.append(rs["p50"] - rs["lo"])
                err_hi.append(rs["hi"] - rs["p50"])
        ax.bar(xs, p50, width, yerr=[err_lo, err_hi], capsize=2, label=n)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(conds))])
    ax.set_xticklabels(["{" + ",".join(c["condition"]) + "}" + f"\nB{c['batch']} L{seq_label(c)}"
                        for c in conds])
    ax.set_ylabel("latency, median of rounds (ms); bars: range of the rounds' medians")
    ax.set_title(f"{conds[0]['model']} — {conds[0]['machine']['cpu']}", fontsize=9)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_outputs(result: dict, json_out: Path | None, markdown: Path | None, to_markdown,
                  plot: Path | None, to_plot) -> Path | None:
    """What every rt-bench mode writes: the JSON, the markdown report (to_markdown(result)) and
    the PNG (to_plot(result, path)); returns the plot's path, if one was written."""
    from anymodal.runtime.jsonio import write_json

    if json_out:
        write_json(result, json_out)
    if markdown:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        markdown.write_text(to_markdown(result))
    return to_plot(result, plot) if plot else None
