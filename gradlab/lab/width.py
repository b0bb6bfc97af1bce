"""The width the lab has in the browser, reported to the kernel (so that its figure can follow it).

Plotly in a ``go.FigureWidget`` sizes the figure when it lays it out, and a window or side-panel
resize alone does not lay it out again (JupyterLab 4.6, plotly 7.1). While the lab runs, its frames
re-fit the figure (``LiveFigure.refit``, every ``REFIT_S``); a paused lab sends none.
:class:`ContainerWidth` is a zero-height widget that spans the lab's width: a ``ResizeObserver`` in
the browser watches it and, 200 ms after the last change, writes its width in pixels to the synced
trait ``width``, which the lab observes. The script is the inline string below: nothing is loaded
from a CDN or the network.
"""

from __future__ import annotations

import anywidget
import ipywidgets as w
import traitlets

__all__ = ["ContainerWidth", "DEBOUNCE_MS"]

DEBOUNCE_MS = 200  # a drag of the window or the side panel reports once, when it stops

_ESM = """
export default {
  render({ model, el }) {
    let timer = null;
    let sent = model.get("width");
    const report = () => {
      timer = null;
      const width = Math.round(el.getBoundingClientRect().width);
      if (width > 0 && width !== sent) {  // 0: the notebook is hidden (another tab); nothing to fit
        sent = width;
        model.set("width", width);
        model.save_changes();
      }
    };
    const observer = new ResizeObserver(() => {
      clearTimeout(timer);
      timer = setTimeout(report, DEBOUNCE_MS);
    });
    observer.observe(el);
    return () => {
      observer.disconnect();
      clearTimeout(timer);
    };
  },
};
""".replace("DEBOUNCE_MS", str(DEBOUNCE_MS))


class ContainerWidth(anywidget.AnyWidget):
    """A zero-height widget, as wide as the box it sits in, whose ``width`` the browser keeps up to date.

    Attributes:
      width: the rendered width in CSS pixels (0 until a browser has shown it). Observe it with
        ``.observe(callback, names="width")``: traitlets calls back only when the value changes.
    """

    _esm = _ESM
    width = traitlets.Int(0).tag(sync=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("layout", w.Layout(width="100%", height="0px", margin="0", overflow="hidden"))
        super().__init__(**kwargs)
