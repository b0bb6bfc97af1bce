"""Figures, the live lab (without a browser) and the HTML report."""

import base64
import re
import time

import keras
import numpy as np
import plotly.graph_objects as go
import pytest

import gradlab
from gradlab import _internals, plots
from gradlab.display.report import main as report_main
from gradlab.lab.lab import Lab, threshold_range
from gradlab.training.history import SCALARS, History


def make_history(loss, norm_before, skipped=None, bound=1.0, label="run"):
    n = len(loss)
    skipped = np.zeros(n) if skipped is None else np.asarray(skipped, float)
    norm_before = np.asarray(norm_before, float)
    norm_after = np.where(skipped > 0, np.nan, np.minimum(norm_before, bound))
    cols = dict(
        loss=np.asarray(loss, float),
        norm_before=norm_before,
        norm_after=norm_after,
        clipped=(norm_before > bound).astype(float),
        skipped=skipped,
        loss_scale=np.ones(n),
        threshold=np.full(n, bound),
        mode=np.full(n, 3.0),
        bound=np.full(n, bound),
    )
    rows = np.column_stack([cols[k] for k in SCALARS] + [norm_before, norm_after, np.full(n, 0.01)])
    return History.from_rows(rows, ["dense"], gradlab.scaler.MODE_NAMES, label=label)


@pytest.fixture
def history():
    return make_history([1.0, 0.5, np.nan, 0.25], [2.0, 0.5, np.inf, 3.0], skipped=[0, 0, 1, 0])


def test_non_finite_values_are_gaps_and_skips_are_marked(history):
    fig = plots.norm_figure(history)
    before, after, bound, skips = fig.data
    assert before.y == (2.0, 0.5, None, 3.0)
    assert after.y == (1.0, 0.5, None, 1.0)
    assert skips.x == (2,) and skips.marker.symbol == "x"
    assert bound.line.shape == "hv"
    json = fig.to_json()
    assert "NaN" not in json and "Infinity" not in json


def test_threshold_line_follows_changes():
    h = make_history([1, 1, 1, 1], [2, 2, 2, 2])
    h.bound[:] = [1.0, 1.0, 0.5, 0.5]
    assert plots.norm_figure(h).data[2].y == (1.0, 1.0, 0.5, 0.5)


def test_clip_rate_is_rolling_over_kept_steps(history):
    # windows of 2 steps, the skipped step 2 left out: [1], [1, 0], [0], [1]
    np.testing.assert_allclose(plots.clip_rate(history, window=2), [1.0, 0.5, 0.0, 1.0])


def test_overview_single_and_overlay(history):
    one = plots.overview(history)
    assert [t.name for t in one.data] == [
        "loss",
        "norm before clipping",
        "norm after clipping",
        "threshold / bound",
        "clip rate",
        "skipped step (non-finite)",
    ]
    strip = one.data[-1]  # skipped steps: a red strip along the top of the clip-rate panel, in the legend
    assert strip.x == (2,) and strip.yaxis == "y3" and strip.showlegend and strip.marker.color == plots.SKIP
    other = make_history([2, 1, 0.5, 0.4], [1, 1, 1, 1], label="other")
    two = plots.overview([history, other])
    assert {t.name for t in two.data} >= {"run", "other"}
    assert isinstance(two, go.Figure) and two.layout.yaxis2.type == "log"
    assert two.layout.annotations[1].text == "global gradient norm after clipping"  # what the panel shows


def test_layer_heatmap_uses_log_norms(history):
    fig = plots.layer_heatmap(history)
    z = fig.data[0].z
    assert z[0][0] == pytest.approx(np.log10(2.0)) and z[0][2] is None
    with pytest.raises(ValueError, match="Unknown which 'x'"):
        plots.layer_heatmap(history, which="x")


def test_live_figure_updates_in_place(history):
    live = plots.LiveFigure()
    widget = live.widget
    live.update(history)
    assert live.widget is widget
    # Sent as typed arrays (binary buffers); the skipped step is a NaN gap.
    np.testing.assert_array_equal(widget.data[2].y, [1.0, 0.5, np.nan, 1.0])
    np.testing.assert_array_equal(widget.data[4].x, [2])  # the skipped-step marker
    live.overlay([history, history])
    assert len(widget.data) == live._n_live + 4
    live.clear_overlays()
    assert len(widget.data) == live._n_live


def report_drawn(widget):
    """What the browser sends back once it has drawn the newest trace edit."""
    _internals.report_drawn(widget, _internals.edit_id(widget))


def test_live_figure_is_busy_until_the_browser_has_drawn(history):
    live = plots.LiveFigure(patience=60)
    assert not live.busy
    live.update(history)
    assert live.busy  # sent, not yet drawn
    time.sleep(0.2)  # the browser takes 0.2 s to draw it
    report_drawn(live.widget)
    assert live.busy  # drawn: now it rests as long as it drew
    time.sleep(0.25)
    assert not live.busy
    live.update(history)
    _internals.report_drawn(live.widget, _internals.edit_id(live.widget) - 1)
    assert live.busy  # a report of an older frame does not count
    lazy = plots.LiveFigure(patience=0.05)  # no browser ever answers: busy for `patience` only
    lazy.update(history)
    assert lazy.busy
    time.sleep(0.1)
    assert not lazy.busy


def test_lab_never_sends_a_frame_while_the_browser_draws_the_last(lab):
    """Flow control: a browser that draws slowly gets fewer frames, not a queue of old ones."""
    frames = []
    update = lab.figure.update
    lab.figure.update = lambda h: (frames.append(len(h)), update(h))[1]
    lab.figure.patience = 60  # a browser that never finishes drawing
    lab.run(steps=40, wait=True)
    assert len(lab.history) == 40
    assert frames == [5, 40]  # the first chunk's frame, then only the run's final frame
    frames.clear()
    lab.figure.patience = 0  # a browser that draws at once
    lab.run(steps=40, wait=True)
    assert frames == list(range(45, 81, 5)) + [80]  # every chunk (redraw_ms=0), then the final frame


def test_clip_rate_matches_a_window_by_window_count():
    rng = np.random.default_rng(0)
    n = 300
    h = make_history(np.ones(n), rng.uniform(0, 2, n), skipped=rng.random(n) < 0.2)
    h.skipped[:25] = 1  # a first window with no kept step: no rate
    kept = np.where(h.skipped > 0, np.nan, h.clipped)
    for window in (1, 7, 20, 500):
        expected = []
        for t in range(n):
            w = kept[max(0, t - window + 1) : t + 1]
            w = w[~np.isnan(w)]
            expected.append(w.mean() if w.size else np.nan)
        np.testing.assert_allclose(plots.clip_rate(h, window), expected, rtol=1e-12)


def _values(array) -> np.ndarray:
    """A Plotly JSON array: a list, or (plotly >= 6, from numpy) ``{"dtype": ..., "bdata": base64}``."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).reshape(array.get("shape", -1))
    return np.array([np.nan if v is None else v for v in array], dtype=float)


def test_static_figure_is_the_figures_json_without_random_ids(history):
    live = plots.LiveFigure()
    live.update(history)
    live.refit()  # layout.meta: left out
    spec = plots.static_figure(live.widget, note="a < b")
    assert sorted(spec) == ["data", "layout"] and "meta" not in spec["layout"]
    assert spec["layout"]["title"]["text"] == "Live run: loss, gradient norm, clip rate<br><sup>a &lt; b</sup>"
    assert not any("uid" in trace for trace in spec["data"])  # a FigureWidget's trace ids are random
    assert [t.get("name") for t in spec["data"]] == [t.name for t in live.widget.data]
    (loss,) = [t for t in spec["data"] if t.get("name") == "loss"]
    np.testing.assert_array_equal(_values(loss["y"]), [1.0, 0.5, np.nan, 0.25])  # the skipped step: a gap
    again = go.Figure(spec)  # valid JSON for plotly (and so for kaleido, which tools/run_notebooks.py runs)
    assert len(again.data) == len(live.widget.data) and again.layout.height == live.widget.layout.height
    assert plots.static_figure(go.Figure(go.Scatter(y=[1])))["layout"].get("title") is None  # no note: as it was
    assert plots.static_figure(live.widget, note="a < b") == spec


def test_bad_histories_argument():
    with pytest.raises(ValueError, match="must be a gradlab History"):
        plots.overview([])


@pytest.fixture
def lab():
    lab = Lab(problem="deep_mlp", steps=40, chunk=5, redraw_ms=0)
    yield lab
    lab.pause()


def test_lab_runs_and_draws(lab):
    lab.run(wait=True)
    assert len(lab.history) == 40
    assert len(lab.figure.widget.data[0].y) == 40
    assert "done" in lab.status.value


def test_lab_controls_change_the_running_step_without_retrace(lab):
    lab.run(steps=10, wait=True)
    lab.controls["threshold"].value = 0.25
    lab.run(steps=10, wait=True)
    lab.controls["mode"].value = "zclip"
    lab.run(steps=10, wait=True)
    h = lab.history
    np.testing.assert_allclose(h.threshold[:10], 1.0)
    np.testing.assert_allclose(h.threshold[10:20], 0.25)
    assert (h.norm_after[10:20] <= 0.25 * (1 + 1e-6)).all()
    assert h.modes[20:] == ["zclip"] * 10
    assert lab.controls["threshold"].value == pytest.approx(2.5)  # zclip's default z
    assert lab.trainer.tracing_count == 1


def test_lab_merges_a_burst_of_slider_changes_while_running(lab):
    """While a run goes, slider messages only store the newest request (no TensorFlow call in the
    handler); the training thread applies it once, before its next chunk."""
    calls = []
    set_scaler = lab.scaler.set
    lab.scaler.set = lambda **kw: (calls.append(kw), set_scaler(**kw))[1]
    lab.run(steps=100_000)
    slider = lab.controls["threshold"]
    with lab._lock:  # the training thread waits at its next chunk
        before = float(lab.scaler.threshold.numpy())
        for value in np.geomspace(0.9, 0.1, 50):
            slider.value = float(value)
        assert calls == [] and float(lab.scaler.threshold.numpy()) == before
    deadline = time.monotonic() + 30
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    n = len(lab.history)  # then some steps with the new threshold
    deadline = time.monotonic() + 30
    while len(lab.history) < n + 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    lab.pause()
    assert calls == [{"mode": "global_norm", "threshold": slider.value}]
    assert lab.history.threshold[-1] == pytest.approx(slider.value, rel=1e-6)


@pytest.mark.parametrize("first", gradlab.scaler.MODE_NAMES)
def test_lab_mode_switch_sets_the_new_modes_threshold(lab, first):
    """Switching from any mode to any other puts the new mode's default (or the value last chosen
    for it) in force, in the scaler and on the slider (issue 15: zclip -> agc gave 1.0)."""
    slider = lab.controls["threshold"]
    lab.controls["mode"].value = "norm"
    slider.value = 0.3  # the reader's choice for norm
    for second in gradlab.scaler.MODE_NAMES:
        if second == first:
            continue
        lab.controls["mode"].value = first
        lab.controls["mode"].value = second
        expected = 0.3 if second == "norm" else gradlab.scaler.MODES[second].default
        assert lab.scaler.mode_name == second
        assert float(lab.scaler.threshold.numpy()) == pytest.approx(expected, rel=1e-6), (first, second)
        assert slider.value == pytest.approx(expected, rel=1e-6)
        lo, hi = threshold_range(second)
        assert (slider.min, slider.max) == (lo, hi)
        assert slider.disabled == (second == "none")


def test_lab_threshold_slider_range_follows_mode(lab):
    lab.controls["mode"].value = "autoclip"
    slider = lab.controls["threshold"]
    assert (slider.min, slider.max) == threshold_range("autoclip") == (0.0, 2.0)
    assert slider.description == "percentile"
    slider.value = 50.0
    assert float(lab.scaler.threshold.numpy()) == pytest.approx(50.0)


def test_lab_pause_stops_growth(lab):
    lab.run(steps=2000)
    lab.pause()
    n = len(lab.history)
    assert not lab.running and n < 2000
    lab.figure.update(lab.history)
    assert len(lab.history) == n


def test_lab_reset_and_learning_rate(lab):
    lab.run(steps=10, wait=True)
    lab.controls["learning_rate"].value = 0.01
    assert float(lab.optimizer.learning_rate.numpy()) == pytest.approx(0.01)
    lab.reset()
    assert len(lab.history) == 0
    assert float(lab.optimizer.learning_rate.numpy()) == pytest.approx(0.01)


def test_lab_compare_all_modes_overlays_every_mode(lab):
    statuses = []
    lab.status.observe(lambda change: statuses.append(change["new"]), names="value")
    lab.compare_all(steps=8, wait=True)
    labels = [plots.overlay_label(m, gradlab.scaler.MODES[m].default) for m in gradlab.scaler.MODE_NAMES]
    assert labels[:2] == ["none", "value (1)"] and "agc (0.01)" in labels
    assert [h.label for h in lab.comparison] == labels
    assert len(lab.figure.widget.data) == lab.figure._n_live + 2 * len(gradlab.scaler.MODE_NAMES)
    first_loss = {h.loss[0] for h in lab.comparison}
    assert len(first_loss) == 1  # identical weights and first batch
    # Progress in the status line, run by run; a table, not a wall of numbers.
    assert any(f"comparing 3/{len(gradlab.scaler.MODE_NAMES)}: norm (1)" in s for s in statuses)
    assert lab.table.value.count("<tr>") == 1 + len(labels) and "agc (0.01)" in lab.table.value
    assert f"compared {len(gradlab.scaler.MODE_NAMES)} modes" in lab.status.value


def test_lab_compare_disables_what_cannot_be_used_meanwhile(lab):
    seen = {}
    fit = gradlab.Trainer.fit

    def spy(trainer, *args, **kwargs):  # look at the controls while a comparison trains
        if trainer is not lab.trainer:
            seen.update({k: c.disabled for k, c in lab.controls.items()})
        return fit(trainer, *args, **kwargs)

    gradlab.Trainer.fit = spy
    try:
        lab.compare_all(steps=5, wait=True)
    finally:
        gradlab.Trainer.fit = fit
    assert seen["run"] and seen["compare"] and seen["reset"] and seen["optimizer"] and seen["problem"]
    assert not seen["pause"]  # Pause stops the comparison
    assert not any(lab.controls[k].disabled for k in ("run", "compare", "reset", "optimizer", "problem"))


def test_lab_reset_clears_the_comparison(lab):
    lab.compare_all(steps=5, wait=True)
    assert lab.comparison and lab.table.value
    lab.reset()
    assert lab.comparison == [] and lab.table.value == ""
    assert len(lab.figure.widget.data) == lab.figure._n_live


def test_lab_static_fallback(lab):
    lab.run(steps=5, wait=True)
    bundle = lab._repr_mimebundle_()
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data and "image/svg+xml" not in data
    figure = data["application/vnd.plotly.v1+json"]  # without a kernel: the figure (run_notebooks.py adds a PNG)
    assert "deep_mlp, mode global_norm, 5 steps: a static copy" in figure["layout"]["title"]["text"]
    (loss,) = [t for t in figure["data"] if t.get("name") == "loss"]
    np.testing.assert_allclose(_values(loss["y"]), lab.trainer.history.loss, rtol=1e-6)
    assert "5 steps" in data["text/plain"]


def test_lab_refits_its_figure_once_per_change_of_its_width(lab):
    """The browser reports the lab's width (a window or side-panel resize): paused, or never run, the lab
    fits its figure at once, once per new width; while it runs, the handler leaves the figure to the
    training thread, whose next frame fits it."""

    def fits():
        meta = lab.figure.widget.layout.meta
        return 0 if meta is None else meta["fit"]

    assert lab.width_report in lab.widget.children and lab.width_report.width == 0
    start = fits()
    lab.width_report.width = 1100
    assert fits() == start + 1
    lab.width_report.width = 1100  # the same width again: nothing to fit
    assert fits() == start + 1
    lab.width_report.width = 800
    assert fits() == start + 2
    lab.run(steps=5, wait=True)  # traced: the run below takes a moment
    with lab._lock:  # the training thread waits at its first chunk
        lab.run(steps=10)
        before = fits()
        lab.width_report.width = 640
        assert fits() == before and lab.running
    lab._thread.join()
    assert fits() >= before + 1


def test_report_is_standalone_html(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert (
        report_main(["--problem", "deep_mlp", "--modes", "none,global_norm=0.5", "--steps", "12", "--out", str(out)])
        == 0
    )
    page = out.read_text()
    assert "<script src=" not in page  # plotly.js inlined: opens offline
    assert (
        len(re.findall(r'Plotly\.newPlot\(\s*"', page)) == 3
    )  # overview + one heatmap per run (plotly.js itself names it too)
    table = re.search(r"<table class='summary'>.*?</table>", page, re.S).group(0)
    assert table.count("<tr>") == 3 and "global_norm=0.5" in table
    assert "final loss" in capsys.readouterr().out


def test_report_runs_from_identical_weights():
    p = gradlab.problems.deep_mlp(depth=2, samples=64)
    runs = gradlab.compare(
        p, ["none", "global_norm"], steps=3, batch_size=16, optimizer=lambda: keras.optimizers.SGD(0.1)
    )
    assert runs[0].norm_before[0] == runs[1].norm_before[0]
