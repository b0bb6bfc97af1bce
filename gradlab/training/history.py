"""`History`: what an instrumented run recorded, step by step and layer by layer.

One type for both paths (gradlab's :class:`~gradlab.training.Trainer` and
``model.fit`` with :class:`~gradlab.training.GradientStats`). Arrays are numpy;
rows are training steps, columns of the per-layer arrays are ``layer_names``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from gradlab import _checks, _extras

__all__ = ["PER_EXAMPLE", "Columns", "History", "SCALARS"]

# Per-step scalar columns, in the order a step writes them.
SCALARS = (
    "loss",
    "norm_before",  # global norm of the gradient the optimizer receives, before scaling
    "norm_after",  # global norm of the gradient after scaling (the update's gradient)
    "clipped",  # 1 when scaling changed the gradients
    "skipped",  # 1 when the update was skipped (non-finite gradients, or a spike: see History.spiked)
    "loss_scale",  # the dynamic loss scale in force (1 without mixed precision)
    "threshold",  # the threshold variable at this step
    "mode",  # the mode index at this step (see mode_names)
    "bound",  # global-norm bound in force (computed for autoclip/zclip; inf if none)
)
PER_LAYER = ("layer_norm_before", "layer_norm_after", "update_ratio")
VALIDATION = ("val_step", "val_loss", "val_accuracy")
# Per-step columns recorded only with per-example clipping (Trainer(l2_norm_clip=...)); NaN otherwise.
PER_EXAMPLE = (
    "example_norm_median",  # median of the per-example gradient norms (before clipping)
    "example_norm_max",  # largest per-example gradient norm
    "example_clip_fraction",  # fraction of the batch's examples clipped to l2_norm_clip
)


class Columns:
    """Where each statistic sits in a packed row: the one layout the recorder writes and History reads.

    A row holds, by name, the :data:`SCALARS` (one column each), the :data:`PER_LAYER`
    statistics (one column per layer each) and the :data:`PER_EXAMPLE` columns.

    >>> c = Columns(["dense", "dense_1"])
    >>> c.width, c.slices["layer_norm_after"], c.slices["example_norm_max"]
    (18, slice(11, 13, None), slice(16, 17, None))
    """

    def __init__(self, layer_names):
        n = len(_checks.names("layer_names", layer_names))
        widths = {**dict.fromkeys(SCALARS, 1), **dict.fromkeys(PER_LAYER, n), **dict.fromkeys(PER_EXAMPLE, 1)}
        self.slices, start = {}, 0
        for name, width in widths.items():
            self.slices[name] = slice(start, start + width)
            start += width
        self.width = start

    def ordered(self, parts: dict) -> list:
        """The values of ``parts`` (every column by name, none more) in the row's order."""
        if set(parts) != set(self.slices):
            missing, extra = sorted(set(self.slices) - set(parts)), sorted(set(parts) - set(self.slices))
            raise ValueError(
                f"Argument `parts` must name every column of a row, {tuple(self.slices)}. "
                f"Received: parts missing {missing} and with unknown {extra}"
            )
        return [parts[name] for name in self.slices]

    def read(self, rows: np.ndarray) -> dict:
        """Each statistic of ``rows`` (steps, width) by name: ``(steps,)`` or ``(steps, layers)``."""
        return {name: rows[:, part] if name in PER_LAYER else rows[:, part.start] for name, part in self.slices.items()}


@dataclasses.dataclass
class History:
    """Recorded statistics of a training run.

    Attributes:
      loss, norm_before, norm_after, clipped, skipped, loss_scale, threshold,
        mode, bound: float arrays of shape ``(steps,)``, one entry per training
        step. The norms (here and per layer) are those of the gradient itself: the
        rows of an ``IndexedSlices`` (an embedding's gradient) with a repeated index
        are summed first. The clipping decides, as Keras' does, on the rows as they
        come, so with repeated ids ``norm_before`` can differ from the norm compared
        with the threshold. ``loss`` is NaN on a step whose loss the optimizer was
        not shown (a custom ``train_step`` without ``optimizer.record_loss(loss)``,
        Keras' own ``LossScaleOptimizer``, a step it skipped); see
        :class:`~gradlab.GradientStats`.
      layer_norm_before, layer_norm_after, update_ratio: ``(steps, layers)``;
        ``update_ratio`` is ``||w_new - w_old|| / ||w_old||`` per layer.
      layer_names: names of the layers (groups of variables).
      mode_names: name of each mode index.
      label: a name for the run (used by plots and ``compare``).
      val_step, val_loss, val_accuracy: held-out evaluations, one per entry:
        the number of steps trained when evaluated, the validation loss, and the
        accuracy (NaN when the loss is not a classification loss). Empty when
        no validation data was given.
      example_norm_median, example_norm_max, example_clip_fraction: ``(steps,)``,
        with per-example clipping (``Trainer(l2_norm_clip=C)``): the median and
        the max of the batch's per-example gradient norms before clipping, and the
        fraction of its examples clipped to ``C``. NaN on steps without it (and
        when not given: the default).
    """

    loss: np.ndarray
    norm_before: np.ndarray
    norm_after: np.ndarray
    clipped: np.ndarray
    skipped: np.ndarray
    loss_scale: np.ndarray
    threshold: np.ndarray
    mode: np.ndarray
    bound: np.ndarray
    layer_norm_before: np.ndarray
    layer_norm_after: np.ndarray
    update_ratio: np.ndarray
    layer_names: list
    mode_names: tuple
    label: str = ""
    val_step: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))
    val_loss: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    val_accuracy: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    example_norm_median: np.ndarray | None = None
    example_norm_max: np.ndarray | None = None
    example_clip_fraction: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.loss) if hasattr(self.loss, "__len__") else None
        for k in SCALARS:
            shape = np.shape(getattr(self, k))
            if len(shape) != 1 or shape[0] != n:
                raise ValueError(
                    f"Argument `{k}` must be a 1-D array with one value per step, as long as `loss` ({n}). "
                    f"Received: {k} of shape {shape}"
                )
        layers = len(self.layer_names) if isinstance(self.layer_names, (list, tuple)) else None
        for k in PER_LAYER:
            shape = np.shape(getattr(self, k))
            if shape != (n, layers):
                raise ValueError(
                    f"Argument `{k}` must be an array of shape (steps, layers) = ({n}, {layers}). "
                    f"Received: {k} of shape {shape}"
                )
        shapes = {k: np.shape(getattr(self, k)) for k in VALIDATION}
        if any(len(s) != 1 for s in shapes.values()) or len(set(shapes.values())) != 1:
            raise ValueError(
                "Arguments `val_step`, `val_loss` and `val_accuracy` must be 1-D arrays of one length "
                f"(one entry per evaluation). Received shapes: {shapes}"
            )
        for k in PER_EXAMPLE:
            if getattr(self, k) is None:
                setattr(self, k, np.full(n, np.nan))
            shape = np.shape(getattr(self, k))
            if shape != (n,):
                raise ValueError(
                    f"Argument `{k}` must be a 1-D array with one value per step, as long as `loss` ({n}). "
                    f"Received: {k} of shape {shape}"
                )

    @property
    def per_example(self) -> bool:
        """True when some step recorded per-example statistics (``Trainer(l2_norm_clip=...)``)."""
        return bool(np.isfinite(self.example_norm_max).any())

    @classmethod
    def empty(cls, layer_names, mode_names, label=""):
        layer_names, mode_names = _checks.names("layer_names", layer_names), _checks.names("mode_names", mode_names)
        label = _checks.text("label", label)
        n = len(layer_names)
        scalars = {k: np.zeros(0, np.float64) for k in SCALARS}
        layers = {k: np.zeros((0, n), np.float64) for k in PER_LAYER}
        return cls(**scalars, **layers, layer_names=list(layer_names), mode_names=tuple(mode_names), label=label)

    @classmethod
    def from_rows(cls, rows: np.ndarray, layer_names, mode_names, label=""):
        """Build from the packed rows a compiled step writes: scalars, then 3 x layers, then
        the 3 :data:`PER_EXAMPLE` columns (optional: rows without them get NaN there)."""
        layer_names, mode_names = _checks.names("layer_names", layer_names), _checks.names("mode_names", mode_names)
        label = _checks.text("label", label)
        n, s = len(layer_names), len(SCALARS)
        try:
            rows = np.asarray(rows, np.float64)
        except (TypeError, ValueError):
            raise _checks._fail("rows", "a 2-D array of numbers", rows) from None
        columns, e = Columns(layer_names), len(PER_EXAMPLE)
        if rows.ndim != 2 or rows.shape[1] not in (columns.width - e, columns.width):
            raise ValueError(
                f"Argument `rows` must be a 2-D array of shape (steps, {columns.width - e}): {s} scalars, then 3 x "
                f"{n} per-layer values (or (steps, {columns.width}) with the {e} per-example columns after "
                f"them). Received: rows of shape {rows.shape}"
            )
        if rows.shape[1] < columns.width:  # without the per-example columns: NaN there
            rows = np.concatenate([rows, np.full((len(rows), e), np.nan)], axis=1)
        return cls(**columns.read(rows), layer_names=list(layer_names), mode_names=tuple(mode_names), label=label)

    def extend(self, other: History) -> History:
        """Append the steps of ``other`` (same layers and modes) in place; return self."""
        if not isinstance(other, History):
            raise _checks._fail("other", "a gradlab History", other)
        if list(other.layer_names) != list(self.layer_names):
            raise ValueError(
                f"Argument `other` must record the same layers, {list(self.layer_names)}. "
                f"Received: other.layer_names={list(other.layer_names)}"
            )
        if tuple(other.mode_names) != tuple(self.mode_names):
            raise ValueError(
                f"Argument `other` must number its modes the same way, {tuple(self.mode_names)}. "
                f"Received: other.mode_names={tuple(other.mode_names)}"
            )
        offset = len(self)
        for k in SCALARS + PER_LAYER + PER_EXAMPLE:
            setattr(self, k, np.concatenate([getattr(self, k), getattr(other, k)]))
        self.val_step = np.concatenate([self.val_step, np.asarray(other.val_step, np.int64) + offset])
        self.val_loss = np.concatenate([self.val_loss, other.val_loss])
        self.val_accuracy = np.concatenate([self.val_accuracy, other.val_accuracy])
        return self

    def add_validation(self, loss: float, accuracy: float = float("nan")) -> None:
        """Append one held-out evaluation, taken after the steps recorded so far."""
        self.val_step = np.append(self.val_step, len(self)).astype(np.int64)
        self.val_loss = np.append(self.val_loss, float(loss))
        self.val_accuracy = np.append(self.val_accuracy, float(accuracy))

    def __len__(self) -> int:
        return len(self.loss)

    def __repr__(self) -> str:  # short: the arrays are read with to_pandas() or as attributes
        return f"History(label={self.label!r}, steps={len(self)}, layer_names={list(self.layer_names)!r})"

    @property
    def steps(self) -> np.ndarray:
        return np.arange(len(self))

    @property
    def modes(self) -> list:
        """Mode name at each step."""
        return [self.mode_names[int(m)] for m in self.mode]

    @property
    def spiked(self) -> np.ndarray:
        """bool per step: skipped by the spike rule (``Scaler(skip_spikes=...)``), not for non-finite gradients.

        A step skipped for non-finite gradients records a non-finite ``norm_before``
        (that is why it was skipped); a step skipped as a spike records its finite norm.
        """
        return (self.skipped > 0) & np.isfinite(self.norm_before)

    @property
    def clip_rate(self) -> float:
        """Fraction of (not skipped) steps on which scaling changed the gradients."""
        kept = self.skipped == 0
        return float(self.clipped[kept].mean()) if kept.any() else float("nan")

    def to_pandas(self):
        """Two tidy frames: ``(steps, layers)``.

        ``steps`` has one row per step and a column per scalar (``mode`` as its
        name); ``layers`` has one row per (step, layer) with the per-layer columns.
        """
        pd = _extras.require("pandas", "History.to_pandas")

        steps = pd.DataFrame({"step": self.steps, **{k: getattr(self, k) for k in SCALARS}})
        steps["mode"] = self.modes
        steps["clipped"] = steps["clipped"].astype(bool)
        steps["skipped"] = steps["skipped"].astype(bool)
        if self.per_example:  # the per-example columns only where they were recorded
            for k in PER_EXAMPLE:
                steps[k] = getattr(self, k)
        steps.insert(0, "run", self.label)
        n = len(self.layer_names)
        layers = pd.DataFrame(
            {
                "run": self.label,
                "step": np.repeat(self.steps, n),
                "layer": np.tile(self.layer_names, len(self)),
                **{k: getattr(self, k).reshape(-1) for k in PER_LAYER},
            }
        )
        return steps, layers

    def to_tensorboard(self, logdir: str) -> str:
        """Write scalars (per step) and per-layer norm histograms for TensorBoard.

        Returns ``logdir``. Non-finite values (skipped steps) are written as they are.
        """
        path = os.fspath(logdir) if isinstance(logdir, os.PathLike) else logdir
        if not isinstance(path, str) or not path:
            raise _checks._fail("logdir", "a directory path (a non-empty string or os.PathLike)", logdir)
        _extras.require("tensorboard", "History.to_tensorboard")  # tf.summary's writers come with it
        import tensorflow as tf

        writer = tf.summary.create_file_writer(path)
        with writer.as_default():
            for t in range(len(self)):
                for k in SCALARS:
                    if k != "mode":
                        tf.summary.scalar(f"gradlab/{k}", getattr(self, k)[t], step=t)
                tf.summary.scalar("gradlab/mode", self.mode[t], step=t)
                if len(self.layer_names):
                    tf.summary.histogram("gradlab/layer_norm_before", self.layer_norm_before[t], step=t)
                    tf.summary.histogram("gradlab/layer_norm_after", self.layer_norm_after[t], step=t)
                    tf.summary.histogram("gradlab/update_ratio", self.update_ratio[t], step=t)
                for j, name in enumerate(self.layer_names):
                    tf.summary.scalar(f"layer_norm_before/{name}", self.layer_norm_before[t, j], step=t)
            writer.flush()
        return logdir

    def summary(self) -> dict:
        """Final loss, clip rate and norm statistics (finite steps only)."""
        ok = np.isfinite(self.norm_before) & (self.skipped == 0)
        nb = self.norm_before[ok]
        return {
            "run": self.label,
            "steps": len(self),
            "final_loss": float(self.loss[-1]) if len(self) else float("nan"),
            "clip_rate": self.clip_rate,
            "skipped": int(self.skipped.sum()),
            "norm_median": float(np.median(nb)) if nb.size else float("nan"),
            "norm_p90": float(np.percentile(nb, 90)) if nb.size else float("nan"),
            "norm_max": float(nb.max()) if nb.size else float("nan"),
        }
