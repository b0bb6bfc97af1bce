"""Every figure gradlab makes, as a reader sees it (issue 15): a title, a title on every axis that
shows labels, one colour per run or quantity (never two legend entries in one colour), powers of
ten (no SI suffixes such as "100M") on log axes, no legend entries that draw nothing, and y ranges
that hold the runs that stay finite while a diverged run is marked at the top edge.

The figure functions are found, not listed: every public function of every module of
gradlab.display that is annotated to return a go.Figure, and the lab's LiveFigure.
"""

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest

import gradlab.display
from gradlab import plots
from gradlab.display import style

sys.path.insert(0, str(Path(__file__).parent))
from test_plots import make_history  # noqa: E402


def figure_functions():
    found = {}
    for info in pkgutil.iter_modules(gradlab.display.__path__):
        module = importlib.import_module(f"gradlab.display.{info.name}")
        for name, fn in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != module.__name__:
                continue
            ret = inspect.signature(fn).return_annotation
            if ret is go.Figure or ret in ("go.Figure", "plotly.graph_objects.Figure"):
                found[f"{info.name}.{name}"] = fn
    return found


FUNCTIONS = figure_functions()


def test_the_figure_functions_are_found():
    assert {"plots.overview", "plots.loss_figure", "plots.norm_figure", "plots.layer_heatmap"} <= set(FUNCTIONS)


def runs():
    """A calm run with a skipped step, a run in mode none (no bound), and one that diverges to 1e30."""
    calm = make_history([1.0, 0.5, np.nan, 0.25, 0.2], [2.0, 0.5, np.inf, 3.0, 1.0], skipped=[0, 0, 1, 0, 0])
    free = make_history([1.0, 0.8, 0.7, 0.6, 0.5], [1, 1, 1, 1, 1], bound=np.inf, label="none")
    wild = make_history([1.0, 10, 1e5, 1e20, 1e30], [1, 10, 1e10, 1e30, 1e36], label="wild")
    calm.add_validation(0.9)
    return calm, free, wild


# Figures known to fall short, with what they need (strict: once fixed, the entry must go).
KNOWN: dict[str, str] = {}  # figure functions that may fail the checks, with why (none)


_made = {}


def made(key):
    """The input of a figure function, by the name of its first argument (built once, small)."""
    if key not in _made:
        if key == "advice":
            from gradlab.explore.advise import advise
            from gradlab.problems.builtin import deep_mlp

            _made[key] = advise(deep_mlp(depth=2, samples=64), steps=12, batch_size=16)
        elif key == "verification":
            _made[key] = made("advice").verify(seeds=2, steps=6)
        elif key == "surface":
            from gradlab.problems.recurrent import cliff_surface

            _made[key] = cliff_surface(points=21)
        else:
            raise AssertionError(f"no input for a figure function taking `{key}`: add one to made() here")
    return _made[key]


def calls():
    out = []
    for key, fn in FUNCTIONS.items():
        marks = [pytest.mark.xfail(reason=KNOWN[key], strict=True)] if key in KNOWN else []
        first = next(iter(inspect.signature(fn).parameters))
        if first == "histories":
            out += [
                pytest.param(fn, "one", id=f"{key}-one", marks=marks),
                pytest.param(fn, "three", id=f"{key}-three", marks=marks),
            ]
        elif first in ("history", "h"):
            out += [pytest.param(fn, name, id=f"{key}-{name}", marks=marks) for name in ("calm", "free", "wild")]
        else:
            out.append(pytest.param(fn, first, id=key, marks=marks))
    return out


def argument(name):
    calm, free, wild = runs()
    histories = {"one": [calm], "three": [calm, free, wild], "calm": calm, "free": free, "wild": wild}
    return histories[name] if name in histories else made(name)


def live(with_overlays: bool):
    fig = plots.LiveFigure()
    calm, free, wild = runs()
    if with_overlays:
        modes = [make_history(np.linspace(1, 0.5, 5), np.ones(5), label=f"mode {i}") for i in range(8)]
        fig.overlay([*modes, wild])
    fig.update(calm)
    return fig.widget


def axes(fig):
    names = {k for k in fig.layout.to_plotly_json() if k.startswith(("xaxis", "yaxis"))}
    for t in fig.data:
        for ref in (getattr(t, "xaxis", None), getattr(t, "yaxis", None)):
            if ref:
                names.add(ref[0] + "axis" + ref[1:])
    return {n: fig.layout[n] for n in sorted(names)}


def color(trace):
    for part in ("line", "marker"):
        c = getattr(getattr(trace, part, None), "color", None)
        if isinstance(c, str):
            return c
    return None


def check(fig):
    assert fig.layout.title.text, "no title"
    for name, axis in axes(fig).items():
        if axis.showticklabels is False:
            continue  # a shared axis without labels: the one below is titled
        assert axis.title.text, f"{name} has no title"
        if axis.type == "log":
            assert axis.exponentformat == "power" or axis.ticktext, f"{name}: SI suffixes"
            assert axis.dtick is not None and float(axis.dtick) == int(axis.dtick) >= 1, f"{name}: not whole decades"
    # One colour per legend entry: traces of one group (a run's loss, norm, clip rate) share theirs.
    groups = {}
    for i, t in enumerate(fig.data):
        c = color(t)
        if c is not None:
            groups.setdefault(c, set()).add((getattr(t, "legend", None), t.legendgroup or t.name or i))
    repeated = {c: g for c, g in groups.items() if len(g) > 1}
    assert not repeated, f"colours shared by several entries: {repeated}"
    # Nothing in the legend that draws nothing.
    for t in fig.data:
        if t.showlegend is False or isinstance(t, go.Heatmap):
            continue
        y = np.array([np.nan if v is None else v for v in (t.y if t.y is not None else ())], dtype=float)
        assert np.isfinite(y).any(), f"legend entry {t.name!r} draws nothing"


@pytest.mark.parametrize("fn, arg", calls())
def test_every_figure_reads_well(fn, arg):
    check(fn(argument(arg)))


@pytest.mark.parametrize("with_overlays", [False, True], ids=["live", "live-with-nine-overlays"])
def test_the_live_figure_reads_well(with_overlays):
    widget = live(with_overlays)
    check(widget)
    assert widget.layout.margin.autoexpand is False  # the plot area keeps its width as legends fill
    if with_overlays:
        legend2 = [t for t in widget.data if t.legend == "legend2" and t.showlegend is not False]
        assert [t.name for t in legend2] == [f"mode {i}" for i in range(8)] + ["wild"]
        assert widget.layout.legend.title.text == "<b>this run</b>"
        assert widget.layout.legend2.title.text == "<b>compared modes</b>"


def test_skipped_steps_have_a_colour_of_their_own():
    assert style.SKIP not in style.RUNS and style.SKIP not in style.LIVE.values()
    assert not set(style.COMPARED) & set(style.LIVE.values()) and len(style.COMPARED) >= 9
    assert len(set(style.RUNS)) == len(style.RUNS)


def test_a_diverged_run_does_not_squeeze_the_others():
    calm, free, wild = runs()
    fig = plots.overview([calm, free, wild])
    lo, hi = fig.layout.yaxis.range  # log10 of the loss axis
    assert 10**lo <= 0.2 and 10**hi >= 1.0 and hi <= 2  # the finite runs fill it; 1e30 is not in it
    marks = [a for a in fig.layout.annotations if a.hovertext and "diverged" in a.hovertext]
    assert {a.yref for a in marks} == {"y domain", "y2 domain"} and all(a.y == 1 for a in marks)
    assert all(a.x == 2 and a.hovertext.startswith("wild diverged at step 2") for a in marks)
    widget = live(True)
    assert widget.layout.yaxis.range[1] <= 2


def test_diverged_at():
    assert style.diverged_at([1, 2, 3]) is None
    assert style.diverged_at([1, 2, 2000, 3]) == 2  # above 1000 x the first loss
    assert style.diverged_at([1, np.nan, 0.5]) is None  # one skipped step is not divergence
    assert style.diverged_at([1, 0.5, np.nan, np.inf]) == 2  # non-finite to the end
    assert style.diverged_at([np.nan]) == 0 and style.diverged_at([]) is None


def test_the_heatmap_stops_where_the_values_do():
    _, _, wild = runs()
    wild.layer_norm_before[3:] = np.inf
    fig = plots.layer_heatmap(wild)
    assert tuple(fig.layout.xaxis.range) == (-0.5, 2.5)
    note = fig.layout.annotations[0].text
    assert "blank cells: not finite" in note and "after step 2" in note
    assert "gradient norm" in fig.data[0].colorbar.title.text
