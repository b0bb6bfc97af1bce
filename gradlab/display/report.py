"""A standalone HTML report comparing scaling modes on one problem, built-in or your own.

    python -m gradlab report --problem deep_mlp --modes none,global_norm,zclip --steps 200 --out report.html
    python -m gradlab report --model mypkg.models:build --data mypkg.data:load --optimizer adam --lr 1e-3

From Python, :func:`report` writes the same report from objects::

    gradlab.report(model, x=x, y=y, loss="mse", optimizer="adam", learning_rate=1e-3,
                   validation_data=(x_val, y_val), path="report.html")

Runs :func:`gradlab.compare` (identical initial weights and data order for
every mode) and writes one HTML file with plotly.js inlined, so it opens
offline: the overview plots, the validation loss (and accuracy) when there is
validation data, a per-layer heatmap per run, and a table of final loss, mean
clip rate and norm statistics per mode.
"""

from __future__ import annotations

import argparse
import html
import importlib
import math
import os
import time

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gradlab import _checks
from gradlab.display import plots, style
from gradlab.display.panels import as_histories
from gradlab.explore.compare import compare, resolve_optimizer, resolve_problem
from gradlab.problems.builtin import PROBLEMS, make_problem
from gradlab.scaler.modes import MODE_NAMES, check_mode, check_threshold
from gradlab.training.history import History
from gradlab.training.optimizers import OPTIMIZERS

__all__ = ["DEFAULT_LR", "main", "report", "summary_table", "validation_figure", "write_report"]

DEFAULT_MODES = "none,global_norm,norm,value,agc,autoclip,zclip"
# The command line's learning rate when --lr is not given: 0.5 makes plain SGD explode on the
# deep_mlp preset (what the report shows by default); Keras' own defaults for the others.
DEFAULT_LR = {"sgd": 0.5, "momentum": 0.01, "adam": 1e-3, "adamw": 1e-3, "rmsprop": 1e-3}


def summary_table(histories: list[History]) -> str:
    """An HTML table of each run's summary."""
    histories = as_histories(histories)
    head = ["run", "steps", "final loss", "mean clip rate", "skipped", "median norm", "p90 norm", "max norm"]
    validated = any(len(h.val_loss) for h in histories)
    accuracy = any(np.isfinite(h.val_accuracy).any() for h in histories)
    head += ["final val loss"] * validated + ["final val accuracy"] * accuracy
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
        last = len(h.val_loss) > 0
        cells += [float(h.val_loss[-1]) if last else float("nan")] * validated
        cells += [float(h.val_accuracy[-1]) if last else float("nan")] * accuracy
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
    histories = as_histories(histories)
    _check_path(path)
    title, note = _checks.text("title", title), _checks.text("note", note)
    figures = [plots.overview(histories)]
    if any(len(h.val_loss) for h in histories):
        figures.append(validation_figure(histories))
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


def validation_figure(histories) -> go.Figure:
    """Validation loss (and accuracy, for a classification loss) against the training step, one line per run."""
    hs = as_histories(histories)
    accuracy = any(np.isfinite(h.val_accuracy).any() for h in hs)
    fig = make_subplots(
        rows=1,
        cols=2 if accuracy else 1,
        subplot_titles=("validation loss", "validation accuracy")[: 2 if accuracy else 1],
    )
    for i, h in enumerate(hs):
        color, name = plots.PALETTE[i % 10], h.label or f"run {i}"
        steps = h.val_step.tolist()
        drawn = bool(np.isfinite(h.val_loss).any())  # a run whose every evaluation diverged draws nothing
        fig.add_scatter(
            x=steps,
            y=plots.finite(h.val_loss),
            name=name,
            legendgroup=name,
            showlegend=drawn,
            line=dict(color=color),
            row=1,
            col=1,
        )
        if accuracy:
            fig.add_scatter(
                x=steps,
                y=plots.finite(h.val_accuracy),
                name=name,
                legendgroup=name,
                showlegend=False,
                line=dict(color=color),
                row=1,
                col=2,
            )
    fig.update_xaxes(title_text="training step")
    fig.update_yaxes(title_text="loss", **style.log_axis(), row=1, col=1)
    if accuracy:
        fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=2)
    fig.update_layout(
        title="Held-out data: does clipping help?", height=360, template="plotly_white", margin=dict(t=70)
    )
    return fig


def report(
    problem="deep_mlp",
    runs=None,
    *,
    x=None,
    y=None,
    loss=None,
    validation_data=None,
    optimizer="sgd",
    learning_rate: float | None = None,
    steps: int = 200,
    batch_size: int = 32,
    seed: int = 0,
    path="gradlab_report.html",
    title: str | None = None,
    **compare_options,
) -> str:
    """Compare modes on a built-in problem or on your own model, and write the HTML report; return its path.

    The same report as ``python -m gradlab report``, from objects.

    Args:
      problem: a built-in problem's name or :class:`~gradlab.problems.Problem`, or
        your model (a built Keras model, or a function building one) with ``x``,
        ``y`` (or ``x`` a ``tf.data.Dataset``) and ``loss``.
      runs: modes, as for :func:`gradlab.compare`; default every mode.
      optimizer, learning_rate: a name from ``OPTIMIZERS`` with a learning rate
        (default: :data:`DEFAULT_LR` for the name), or a function returning a new optimizer.
      validation_data: ``(x_val, y_val)`` or a finite dataset: its loss (and
        accuracy) per run is plotted and tabled.
      steps, batch_size, seed: as for :func:`gradlab.compare`.
      path, title: the output file and the page's title.
      compare_options: further options of :func:`gradlab.compare` (``validation_every``, Trainer options).
    """
    return _report(
        problem,
        runs,
        x=x,
        y=y,
        loss=loss,
        validation_data=validation_data,
        optimizer=optimizer,
        learning_rate=learning_rate,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        path=path,
        title=title,
        **compare_options,
    )[0]


def _report(
    problem,
    runs,
    *,
    x,
    y,
    loss,
    validation_data,
    optimizer,
    learning_rate,
    steps,
    batch_size,
    seed,
    path,
    title=None,
    **compare_options,
) -> tuple[str, list[History]]:
    """:func:`report`, returning the path and the histories."""
    target = _check_path(path)
    runs = _parse_modes(DEFAULT_MODES) if runs is None else runs
    if isinstance(optimizer, str) and learning_rate is None:
        learning_rate = DEFAULT_LR.get(_checks.choice("optimizer", optimizer, tuple(OPTIMIZERS)))
    make = resolve_optimizer(optimizer, learning_rate)
    described = _describe(make())
    problem = resolve_problem(problem, x, y, loss, validation_data, seed)
    if title is not None:
        _checks.text("title", title)
    start = time.perf_counter()
    histories = compare(
        problem,
        runs,
        validation_data=validation_data,
        optimizer=make,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        **compare_options,
    )
    data = "a tf.data.Dataset" if problem.dataset is not None else f"{len(problem.x)} samples"
    note = (
        f"problem {problem.name} ({problem.description}, {data}); optimizer {described}; {steps} steps, "
        f"batch {batch_size}, seed {seed}; every run from identical initial weights and data order; "
        f"{time.perf_counter() - start:.1f} s."
    )
    title = title or f"gradlab: scaling modes on {problem.name}"
    return write_report(histories, target, title=title, note=note), histories


def _scaler_options(args) -> dict:
    """The command line's Scaler options (``--zclip-max-grad-norm``, ``--skip-spikes``), as compare takes them."""
    options = {}
    if args.zclip_max_grad_norm is not None:
        options["zclip_max_grad_norm"] = args.zclip_max_grad_norm
    if args.skip_spikes is not None:
        options["skip_spikes"] = {"sigma": args.skip_spikes}
    return {"scaler_options": options} if options else {}


def _describe(opt) -> str:
    """``"Adam, learning rate 0.001"``."""
    lr = getattr(opt, "learning_rate", None)
    try:
        lr = f", learning rate {float(lr):g}"
    except (TypeError, ValueError):
        lr = ""
    return f"{type(opt).__name__}{lr}"


def _function(spec: str, flag: str):
    """The function ``module:function`` names (``--model``, ``--data``)."""
    module, colon, function = spec.partition(":")
    if not colon or not module or not function:
        raise ValueError(
            f"Argument `{flag}` must be module:function, an importable function such as mypkg.models:build. "
            f"Received: {flag}={spec!r}"
        )
    try:
        fn = getattr(importlib.import_module(module), function)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"Argument `{flag}` must name an importable function ({type(err).__name__}: {err}). "
            f"Received: {flag}={spec!r}"
        ) from None
    if not callable(fn):
        raise ValueError(f"Argument `{flag}` must name a function. Received: {flag}={spec!r} (a {type(fn).__name__})")
    return fn


def _data_parts(data, spec: str) -> tuple:
    """What a ``--data`` function returned, as ``(x, y, validation_data)``."""
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        return data, None, None
    if isinstance(data, dict) and {"x"} <= set(data) <= {"x", "y", "validation_data"}:
        return data["x"], data.get("y"), data.get("validation_data")
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], tf.data.Dataset):
        return data[0], None, data[1]
    if isinstance(data, tuple) and len(data) in (2, 3):
        return (*data, None)[:3]
    raise ValueError(
        "Argument `--data` must name a function returning (x, y), (x, y, (x_val, y_val)), a tf.data.Dataset, "
        "(dataset, validation_data) or a dict with keys x, y, validation_data. "
        f"Received: --data={spec!r}, which returned a {type(data).__name__}"
    )


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
    parser.add_argument(
        "--problem", default=None, help=f"a built-in problem, one of: {', '.join(PROBLEMS)} (default deep_mlp)"
    )
    parser.add_argument("--model", default=None, help="your model: module:function, a function that builds it")
    parser.add_argument(
        "--data",
        default=None,
        help="with --model: module:function returning (x, y), (x, y, (x_val, y_val)), a tf.data.Dataset, "
        "(dataset, validation_data) or a dict with keys x, y, validation_data",
    )
    parser.add_argument(
        "--loss", default=None, help="with --model: a Keras loss name (default: the model's compiled loss)"
    )
    parser.add_argument(
        "--modes",
        default=DEFAULT_MODES,
        help=f"comma-separated modes, each optionally mode=threshold (known: {', '.join(MODE_NAMES)})",
    )
    parser.add_argument("--optimizer", default="sgd", help=f"one of: {', '.join(OPTIMIZERS)}")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")",
    )
    parser.add_argument(
        "--zclip-max-grad-norm",
        type=float,
        default=None,
        help="ZClip's cap on every step's global norm, warm-up included (the reference's default is 1.0; "
        "gradlab's default: no cap)",
    )
    parser.add_argument(
        "--skip-spikes",
        type=float,
        default=None,
        metavar="SIGMA",
        help="skip the update of a step whose global norm is more than SIGMA standard deviations above the mean "
        "of the last 128 steps (OLMo-core's rule, which uses 6; see gradlab.scaler.SkipSpikes). Default: never",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="gradlab_report.html")
    args = parser.parse_args(argv)
    try:
        if args.model is not None and args.problem is not None:
            raise ValueError(
                "Pass either `--problem` or `--model` (with `--data`), not both. "
                f"Received: --problem={args.problem!r}, --model={args.model!r}"
            )
        if (args.model is None) != (args.data is None):
            raise ValueError(
                "Arguments `--model` and `--data` go together: your model and its data. "
                f"Received: --model={args.model!r}, --data={args.data!r}"
            )
        if args.model is None:
            _checks.choice("--problem", args.problem or "deep_mlp", tuple(PROBLEMS), what="problem")
            if args.loss is not None:
                raise ValueError(f"Argument `--loss` goes with `--model`. Received: --loss={args.loss!r}")
        runs = _parse_modes(args.modes)
        _checks.choice("--optimizer", args.optimizer, tuple(OPTIMIZERS), what="optimizer")
        _checks.size("--steps", args.steps)
        lr = DEFAULT_LR[args.optimizer] if args.lr is None else _checks.python_number("--lr", args.lr)
        _checks.size("--batch-size", args.batch_size)
        if args.zclip_max_grad_norm is not None:
            _checks.python_number("--zclip-max-grad-norm", args.zclip_max_grad_norm)
        if args.skip_spikes is not None:
            _checks.python_number("--skip-spikes", args.skip_spikes)
        _checks.size("--seed", args.seed, low=0)
        _check_path(args.out, "--out")
        if args.loss is not None:
            from gradlab.training.inputs import check_loss

            check_loss(args.loss, "--loss")
        if args.model is not None:
            build, load = _function(args.model, "--model"), _function(args.data, "--data")
    except ValueError as err:
        parser.error(str(err))
    if args.model is None:
        name = args.problem or "deep_mlp"
        problem = make_problem(name, seed=args.seed)  # data only; the model is built by compare
        x = y = loss = validation_data = None
        if args.batch_size > len(problem.x):
            parser.error(
                f"Argument `--batch-size` must be at most the number of samples of {name} ({len(problem.x)}). "
                f"Received: --batch-size={args.batch_size}"
            )
    else:
        try:
            x, y, validation_data = _data_parts(load(), args.data)
            loss = args.loss
            if loss is None:
                built = build()
                loss = getattr(built, "loss", None) if getattr(built, "compiled", False) else None
                if loss is None:
                    raise ValueError(
                        "Argument `--loss` is needed: the model from --model is not compiled with a loss. "
                        f"Received: --loss=None, --model={args.model!r}"
                    )
            problem = resolve_problem(build, x, y, loss, validation_data, args.seed)  # checks model, data, loss
            x = y = loss = validation_data = None  # the problem holds them now
        except ValueError as err:
            parser.error(str(err))
    start = time.perf_counter()
    try:
        path, histories = _report(
            problem,
            runs,
            x=x,
            y=y,
            loss=loss,
            validation_data=validation_data,
            optimizer=args.optimizer,
            learning_rate=lr,
            steps=args.steps,
            batch_size=args.batch_size,
            seed=args.seed,
            path=args.out,
            **_scaler_options(args),
        )
    except ValueError as err:
        parser.error(str(err))
    print(f"wrote {path} ({time.perf_counter() - start:.1f} s)")
    for h in histories:
        s = h.summary()
        val = f", final val loss {h.val_loss[-1]:.4g}" if len(h.val_loss) else ""
        print(
            f"  {s['run']:>16}: final loss {s['final_loss']:.4g}, clip rate {s['clip_rate']:.2f}, "
            f"skipped {s['skipped']}{val}"
        )
    return 0
