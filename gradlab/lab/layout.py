"""The lab's layout: its widgets in rows, and the comparison table (inline HTML).

:func:`layout` arranges the controls, the status line, the figure and the table
of :class:`~gradlab.lab.lab.Lab` in one box (CSS classes ``gradlab-lab``,
``gradlab-figure``, ``gradlab-table``); :func:`comparison_table` writes the table
of a "compare all" under the figure; :func:`static_bundle` is the lab's output
with a static copy of its figure for where no kernel runs.
"""

from __future__ import annotations

import html

import ipywidgets as w
import numpy as np

from gradlab.display import plots
from gradlab.display.style import diverged_at

__all__ = ["comparison_table", "layout", "make_parts", "static_bundle"]

# The figure is a flex item of the lab's column: without min-width 0 it keeps the width of what it
# drew, so a narrower notebook cut it off instead of plotly resizing it to the column.
CSS = "<style>.gradlab-lab .gradlab-figure{min-width:0;width:100%;max-width:100%}</style>"
TABLE_CSS = (
    "<style>.gradlab-table{border-collapse:collapse;font-size:12px;margin:4px 0}"
    ".gradlab-table td,.gradlab-table th{padding:1px 10px;text-align:right;border-bottom:1px solid #eee}"
    ".gradlab-table td:first-child,.gradlab-table th:first-child{text-align:left}"
    ".gradlab-table caption{text-align:left;color:#555;caption-side:top}</style>"
)


def make_parts() -> tuple:
    """The lab's status line, comparison table and live figure (which fits itself to the lab's width)."""
    status = w.HTML(layout=w.Layout(min_height="24px", width="100%"))
    status.add_class("gradlab-status-line")
    table = w.HTML(layout=w.Layout(width="100%"))
    table.add_class("gradlab-comparison")
    figure = plots.LiveFigure()
    figure.widget.layout.autosize = True  # plotly fits the figure to the lab's width, and follows it
    figure.widget.add_class("gradlab-figure")
    return status, table, figure


def layout(controls: dict, status, width_report, figure, table) -> w.VBox:
    """The lab's box: three rows of controls, the status line, the width probe, the figure and the table."""
    c = controls

    def row(*children):
        return w.HBox(list(children), layout=w.Layout(flex_flow="row wrap", align_items="center", width="100%"))

    box = w.VBox(
        [
            w.HTML(CSS, layout=w.Layout(display="none")),
            row(c["mode"], c["threshold"]),
            row(c["problem"], c["optimizer"], c["learning_rate"]),
            row(c["steps"], c["run"], c["pause"], c["reset"], c["compare"]),
            status,
            width_report,
            figure,
            table,
        ],
        layout=w.Layout(width="100%"),
    )
    box.add_class("gradlab-lab")
    return box


def comparison_table(runs, colors, steps: int, optimizer: str, learning_rate: float) -> str:
    """The compared runs as an HTML table: final, lowest and validation loss, clip rate, skips, divergence.

    Args:
      runs: the compared :class:`~gradlab.training.history.History` objects, labelled.
      colors: each run's colour in the figure (its square in the first column).
      steps, optimizer, learning_rate: what the caption says they were run with.
    """
    val = any(len(h.val_loss) for h in runs)
    head = "<tr><th>mode (threshold)</th><th>final loss</th><th>lowest loss</th>"
    head += "<th>val loss</th>" if val else ""
    head += "<th>clipped</th><th>skipped</th><th>diverged at</th></tr>"
    rows = []
    for h, color in zip(runs, colors):
        loss = h.loss[np.isfinite(h.loss)]
        stop = diverged_at(h.loss)
        cells = [
            f"<td><span style='color:{color}'>■</span> {html.escape(h.label)}</td>",
            f"<td>{h.loss[-1]:.3g}</td>",
            f"<td>{loss.min():.3g}</td>" if loss.size else "<td>-</td>",
        ]
        if val:
            cells.append(f"<td>{h.val_loss[-1]:.3g}</td>" if len(h.val_loss) else "<td>-</td>")
        cells += [
            f"<td>{h.clip_rate:.0%}</td>",
            f"<td>{int(h.skipped.sum())}</td>",
            f"<td>{'-' if stop is None else f'step {stop}'}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    caption = (
        f"Compared from the same start: {steps} steps, {html.escape(optimizer)}, learning rate "
        f"{learning_rate:.3g}, default thresholds"
    )
    return f"{TABLE_CSS}<table class='gradlab-table'><caption>{caption}</caption>{head}{''.join(rows)}</table>"


def static_bundle(widget, figure, problem: str, mode: str, optimizer: str, steps: int, **kwargs) -> dict:
    """The lab's notebook output: the widget view, and its figure's Plotly JSON beside it.

    Without a kernel (GitHub, nbviewer, a notebook opened cold) the widget view shows nothing: the
    figure's Plotly JSON beside it does. JupyterLab draws the widget over it whenever it can (the
    widget renderer's rank is -10, Plotly's 2; untrusted outputs get only safe renderers, Plotly's
    and not the widget's); nbval does not compare widget views but compares this JSON (the lab's
    cells are NBVAL_IGNORE_OUTPUT). tools/run_notebooks.py adds a PNG of it, drawn by kaleido: the
    kernel needs no browser (Binder has none).
    """
    note = f"gradlab lab: {problem}, mode {mode}, {steps} steps: a static copy (run the notebook for the live lab)"
    text = f"<gradlab.Lab {problem}, mode={mode}, optimizer={optimizer}, {steps} steps>"
    return plots.widget_bundle(widget, figure, note=note, text=text, **kwargs)
