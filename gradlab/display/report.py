"""A standalone HTML report comparing scaling modes on one problem.

    python -m gradlab report --problem deep_mlp --modes none,global_norm,zclip --steps 200 --out report.html

Runs :func:`gradlab.compare` (identical initial weights and data order for
every mode) and writes one HTML file with plotly.js inlined, so it opens
offline: the overview plots, a per-layer heatmap per run, and a table of final
loss, mean clip rate and norm statistics per mode.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import time

import keras

from gradlab import _checks
from gradlab.display import plots
from gradlab.scaler.modes import MODE_NAMES, check_mode, check_threshold
from gradlab.training.compare import compare
from gradlab.training.history import History
from gradlab.training.problems import PROBLEMS, make_problem

__all__ = ["main", "summary_table", "write_report"]


def summary_table(histories: list[History]) -> str:
    """An HTML table of each run's summary."""
    histories = plots._list(histories)
    head = ["run", "steps", "final loss", "mean clip rate", "skipped", "median norm", "p90 norm", "max norm"]
    rows = []
    for h in histories:
        s = h.summary()
        cells = [
            s["run"],
            s["steps"],
            s["final_loss"],
            s["clip_rate"],
            s["skipped"],
            s["norm_median"],
            s["norm_p90"],
            s["norm_max"],
        ]
        rows.append("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>")
    return (
        "<table class='summary'><thead><tr>"
        + "".join(f"<th>{c}</th>" for c in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _fmt(v):
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    return html.escape(str(v))


def write_report(histories: list[History], path: str, title: str = "gradlab report", note: str = "") -> str:
    """Write the comparison of ``histories`` to ``path`` (standalone HTML); return the path."""
    histories = plots._list(histories)
    _check_path(path)
    title, note = _checks.text("title", title), _checks.text("note", note)
    figures = [plots.overview(histories)]
    figures += [
        plots.layer_heatmap(h).update_layout(title=f"Gradient norm per layer: {h.label}", height=300) for h in histories
    ]
    body = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(note)}</p>", summary_table(histories)]
    for i, fig in enumerate(figures):
        # plotly.js is inlined once, in the first figure: the file opens offline.
        body.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0), default_height=fig.layout.height or 400))
    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table.summary{{border-collapse:collapse;margin:1em 0}}
table.summary td,table.summary th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}</style>
</head><body>
{"".join(body)}
</body></html>"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def _check_path(path, name="path"):
    """A file path whose folder exists (checked before any figure is built)."""
    target = os.fspath(path) if isinstance(path, os.PathLike) else path
    if not isinstance(target, str) or not target:
        raise _checks._fail(name, "a file path (a non-empty string or os.PathLike)", path)
    if os.path.isdir(target):
        raise _checks._fail(name, "a file path, not a directory", path)
    folder = os.path.dirname(target) or "."
    if not os.path.isdir(folder):
        raise _checks._fail(name, f"a file path in an existing directory ({folder!r} does not exist)", path)
    return target


def _parse_modes(modes: str) -> list:
    """``"none,global_norm=0.5"`` as compare's runs: ``["none", ("global_norm", 0.5)]``, every one checked."""
    runs = []
    for item in filter(None, (m.strip() for m in modes.split(","))):
        mode, eq, threshold = (part.strip() for part in item.partition("="))
        try:
            check_mode(mode)
        except ValueError:
            raise ValueError(
                f"Unknown mode {mode!r} in `--modes`. Expected comma-separated modes from: "
                f"{', '.join(repr(m) for m in MODE_NAMES)}, each optionally mode=threshold. Received: --modes={modes!r}"
            ) from None
        if not eq:
            runs.append(mode)
            continue
        try:
            value = float(threshold)
        except ValueError:
            value = threshold
        try:
            runs.append((mode, check_threshold(mode, value)))
        except ValueError as err:
            raise ValueError(f"{err}, in --modes={modes!r}") from None
    if not runs:
        raise ValueError(f"Argument `--modes` must name at least one mode. Received: --modes={modes!r}")
    return runs


def main(argv=None) -> int:
    """``python -m gradlab report``; every argument is checked before a model is built.

    A bad argument ends the program as argparse does (usage, the Keras-form message
    on stderr, exit status 2) before anything is built or trained.
    """
    parser = argparse.ArgumentParser(prog="python -m gradlab report", description="Compare gradient scaling modes.")
    parser.add_argument("--problem", default="deep_mlp", help=f"one of: {', '.join(PROBLEMS)}")
    parser.add_argument(
        "--modes",
        default="none,global_norm,norm,value,agc,autoclip,zclip",
        help=f"comma-separated modes, each optionally mode=threshold (known: {', '.join(MODE_NAMES)})",
    )
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.5, help="SGD learning rate")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="gradlab_report.html")
    args = parser.parse_args(argv)
    try:
        _checks.choice("--problem", args.problem, tuple(PROBLEMS), what="problem")
        runs = _parse_modes(args.modes)
        _checks.size("--steps", args.steps)
        _checks.python_number("--lr", args.lr)
        _checks.size("--batch-size", args.batch_size)
        _checks.size("--seed", args.seed, low=0)
        _check_path(args.out, "--out")
    except ValueError as err:
        parser.error(str(err))
    problem = make_problem(args.problem, seed=args.seed)  # data only; the model is built by compare
    if args.batch_size > len(problem.x):
        parser.error(
            f"Argument `--batch-size` must be at most the number of samples of {args.problem} ({len(problem.x)}). "
            f"Received: --batch-size={args.batch_size}"
        )
    start = time.perf_counter()
    histories = compare(
        problem,
        runs,
        optimizer=lambda: keras.optimizers.SGD(args.lr),
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
    )
    note = (
        f"problem {args.problem} ({problem.description}); SGD learning rate {args.lr}; {args.steps} steps, "
        f"batch {args.batch_size}, seed {args.seed}; every run from identical initial weights and data order; "
        f"{time.perf_counter() - start:.1f} s."
    )
    path = write_report(histories, args.out, title=f"gradlab: scaling modes on {args.problem}", note=note)
    print(f"wrote {path}")
    for h in histories:
        s = h.summary()
        print(
            f"  {s['run']:>16}: final loss {s['final_loss']:.4g}, clip rate {s['clip_rate']:.2f}, skipped {s['skipped']}"
        )
    return 0
