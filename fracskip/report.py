"""The demo's report folder: figures as PNG and JSON, one static HTML page that needs no server."""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .bench import STATIC_ROWS  # noqa: E402


def decisions_plot(choices: list[dict], path: Path, title: str) -> None:
    """Per gated block, the share of inputs taking each path (as in the DFS paper's supplementary figures)."""
    menu = list(choices[0])
    n = sum(choices[0].values())
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    bottom = [0.0] * len(choices)
    colors = {"0": "#bbbbbb", "2": "#9ecae1", "4": "#3182bd", "8": "#08306b"}
    for b in menu:
        share = [100 * c[b] / n for c in choices]
        ax.bar(range(1, len(choices) + 1), share, bottom=bottom, color=colors.get(b), label="skip" if b == "0" else f"{b}-bit")
        bottom = [x + y for x, y in zip(bottom, share)]
    ax.set_xlabel("gated block")
    ax.set_ylabel("inputs (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=len(menu), loc="upper center", bbox_to_anchor=(0.5, -0.22))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def cores_plot(summary: dict, path: Path) -> None:
    """Per core: FINN's LUT/BRAM/DSP estimates and cycles per frame, with how often the core runs."""
    cores = summary["cores"]
    names = list(cores)
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), dpi=120, sharex=True)
    x = range(len(names))
    for i, (r, c) in enumerate((("LUT", "tab:blue"), ("BRAM_18K", "tab:orange"), ("DSP", "tab:green"))):
        a1.bar([k + (i - 1) * 0.27 for k in x], [cores[n]["resources"][r] for n in names], 0.27, label=r, color=c)
    a1.set_yscale("symlog")
    a1.set_ylabel("FINN estimate")
    a1.legend(fontsize=7)
    a2.bar(x, [cores[n]["cycles"] for n in names], color="tab:purple")
    a2.set_yscale("log")
    a2.set_ylabel("cycles / frame")
    for k, n in enumerate(names):
        a2.annotate(f"p={cores[n]['probability']:.2f}", (k, cores[n]["cycles"]), fontsize=6, ha="center",
                    textcoords="offset points", xytext=(0, 2))
    a2.set_xticks(list(x))
    a2.set_xticklabels(names, rotation=60, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


DESIGNS = {"dfs": "DFS", **STATIC_ROWS}
COLORS = {"dfs": "tab:red", "static_W2A2": "tab:cyan", "static_W4A4": "tab:blue", "static_W8A8": "navy"}


def throughput_plot(table: dict, path: Path) -> None:
    """Images per second at the board clock of the DFS accelerator and the static pipelines on the same budget
    (``fracskip bench``'s "throughput"): the folding model's, and each design's as measured in Verilator where it
    was emitted and measured."""
    from matplotlib.patches import Patch

    names = [n for n in DESIGNS if n in table]
    fig, ax = plt.subplots(figsize=(7, 3), dpi=120)
    model = [table[n]["images_per_s_model"] for n in names]
    ax.barh(range(len(names)), model, color=[COLORS[n] for n in names], alpha=0.75)
    handles = [Patch(color="0.6", label="folding model (estimates)")]
    measured = [(k, table[n]["images_per_s_measured"]) for k, n in enumerate(names) if table[n]["images_per_s_measured"]]
    if measured:
        handles += ax.plot([v for _, v in measured], [k for k, _ in measured], "kD", label="measured in Verilator")
    for k, n in enumerate(names):
        acc = table[n]["accuracy"]
        ax.annotate("" if acc is None else f"acc {acc:.4f}", (model[k], k), va="center", fontsize=7,
                    textcoords="offset points", xytext=(8, 0))
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([DESIGNS[n] for n in names])
    # the bars are the folding model's cycles; only the diamonds were measured
    ax.set_xlabel(f"images / s at {table['clock_mhz']:.0f} MHz (the clock assumed, not timed)")
    more = (table.get("dfs") or {}).get("frame_buffers_frames_more")
    room = f"\n(DFS's frame buffers hold {more} more frame{'s' * (more > 1)}, in the room above it)" if more else ""
    ax.set_title(f"{table['board']}, nodes folded within {100 * table['budget_fraction']:.0f} % of the device, "
                 f"one pipeline each{room}", fontsize=8)
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_xlim(0, max(model) * 1.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def budget_sweep_plot(sweep: dict, path: Path) -> None:
    """Cycles per image of each design folded at each budget (``pipeline_folding.budget_sweep``, estimates): a line
    through the budgets that scale every resource alike, markers alone for those that name resources."""
    from matplotlib.ticker import FuncFormatter

    rows = sweep["rows"]
    uniform = [len(set(r["fractions"].values())) == 1 for r in rows]
    fig, ax = plt.subplots(figsize=(7.5, 3.4), dpi=120)
    for n in DESIGNS:
        y = [r[n]["cycles_per_image_model"] if n in r else float("nan") for r in rows]
        if all(v != v for v in y):
            continue
        line = [v if u else float("nan") for v, u in zip(y, uniform)]
        ax.plot(range(len(rows)), line, "-", color=COLORS[n], label=DESIGNS[n], lw=2.5 if n == "dfs" else 1.2)
        for k, (r, v, u) in enumerate(zip(rows, y, uniform)):  # hollow: no folding of the design fits that budget
            fits = n in r and r[n]["fits"]
            ax.plot([k], [v], "o" if u else "D", color=COLORS[n], mfc=COLORS[n] if fits else "none")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["budget"].replace(",", "\n") for r in rows], fontsize=7)
    ax.set_xlabel("budget the nodes are folded within, as a fraction of the device (where resources are named, "
                  f"the others at {sweep['build_budget_fraction']:g}); hollow: does not fit", fontsize=8)
    ax.set_ylabel("cycles / image (model)")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylim(bottom=0)
    ax.set_title(f"{sweep['board']}: each design folded at each budget (estimates; lower is faster)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def throughput_rows(table: dict) -> dict:
    """One line per design for the report's table."""
    rows = {}
    for n in (n for n in DESIGNS if n in table):
        d = table[n]
        r = d["resources_est_inserted"]
        measured = d["images_per_s_measured"]
        rows[DESIGNS[n]] = (f"accuracy {d['accuracy'] if d['accuracy'] is not None else 'n/a'} · "
                            f"{d['bitops_per_image']:.3g} BitOPs · {d['cycles_per_image_model']:,.0f} cycles/image "
                            f"(model) = {d['images_per_s_model']:,.0f} img/s"
                            + (f" · measured {measured:,.0f} img/s ({d['cycles_per_image_measured']:,.0f} cycles/image "
                               f"on {d['measured_on_images']} images)" if measured else "")
                            + f" · LUT {r['LUT']:,.0f} BRAM18 {r['BRAM_18K']:.0f} DSP {r['DSP']:.0f} (estimates, "
                            "with the width converters and depth-2 FIFOs FINN inserts, not the sized FIFOs)"
                            + (f" · Yosys LUT {y['LUT']:,.0f} FF {y['FF']:,.0f} BRAM18 {y['BRAM_18K']:.0f} "
                               f"DSP {y['DSP']:.0f}" if (y := d.get("resources_synth")) else "")
                            + f" · fits {d['fits']} ({d.get('fits_from', 'estimates')})")
    c = table["claim"]
    if c.get("statics_absent"):
        rows["static pipelines not built"] = "; ".join(f"{DESIGNS[n]}: {why}" for n, why in c["statics_absent"].items())
    if "speedup_measured" in c:
        rows["DFS's speedup, measured (of the BitOPs ratio on the same images)"] = " · ".join(
            f"{DESIGNS[n]} {v:.2f}x ({100 * c['speedup_measured_over_bitops_ratio'][n]:.1f} %)"
            for n, v in c["speedup_measured"].items())
    if "every_test_image" in c:
        e = c["every_test_image"]
        rows[f"DFS's speedup on all {e['n']:,} test images (DFS by its frame-sequence model; of the BitOPs ratio)"] = \
            " · ".join(f"{DESIGNS[n]} {v:.2f}x ({100 * e['speedup_over_bitops_ratio'][n]:.1f} %)"
                       for n, v in e["speedup"].items())
    for how in ("model", "measured"):
        if (key := f"dfs_faster_than_every_peer_{how}") in c:
            rows[f"DFS faster than every static network at least as accurate ({how})"] = \
                c["why_none"] if c[key] is None else f"False: {c['why_false']}" if "why_false" in c else c[key]
    return rows


def write_html(folder: Path, figures: dict, sections: dict[str, dict]) -> Path:
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>fracskip report</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}"
             "img{max-width:100%;border:1px solid #ddd;margin:.5em 0}table{border-collapse:collapse;font-size:90%}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}</style></head><body>",
             "<h1>fracskip report</h1>"]
    for title, rows in sections.items():
        parts.append(f"<h2>{html.escape(title)}</h2><table>")
        for k, v in rows.items():
            parts.append(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>")
        parts.append("</table>")
    for title, fname in figures.items():
        parts.append(f"<h2>{html.escape(title)}</h2><img src='{html.escape(fname)}' alt='{html.escape(title)}'>")
    parts.append("</body></html>")
    page = folder / "index.html"
    page.write_text("\n".join(parts))
    return page


def save_json(folder: Path, name: str, obj) -> None:
    (folder / name).write_text(json.dumps(obj, indent=1))
