"""``Trainer.fit``'s progress display: a bar in Jupyter, a text line elsewhere."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


class Progress:
    """A progress bar widget in Jupyter, a text line (on stderr) elsewhere.

    ``update(done, run)`` shows the steps done and ``run``'s last loss; ``close()``
    marks the bar finished.
    """

    def __init__(self, total, label=""):
        self.total, self.label, self.start = total, label, time.perf_counter()
        self.widget = None
        if "ipykernel" in sys.modules:
            try:
                import ipywidgets as w
                from IPython.display import display

                self.widget = w.HBox([w.IntProgress(max=total, description=label or "training"), w.Label()])
                display(self.widget)
            except ImportError:  # pragma: no cover - ipywidgets is a dependency
                self.widget = None

    def update(self, done, run):
        loss = run.loss[-1] if len(run) else float("nan")
        text = f"{done}/{self.total} steps, loss {loss:.4g}, {time.perf_counter() - self.start:.1f}s"
        if self.widget is not None:
            self.widget.children[0].value = done
            self.widget.children[1].value = text
        else:
            print(f"{self.label + ': ' if self.label else ''}{text}", file=sys.stderr)

    def close(self):
        if self.widget is not None:
            self.widget.children[0].bar_style = "success"
