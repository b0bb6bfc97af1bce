"""The one instrumented update: scale, apply or skip, measure, record.

Both gradlab training paths run it: :class:`~gradlab.training.Trainer`'s
compiled step and :meth:`ScaledOptimizer.apply` inside ``model.fit``. Given the
true (unscaled) gradients, it

1. plans the scaling (:meth:`Scaler.plan`: norms in one pass, the mode's decision),
2. reads the weights' squared norms before the update (only when recording),
3. on a finite step builds the scaled gradients and hands them to ``apply``
   (under XLA the scaling fuses into the optimizer's update); on a step the
   non-finite policy (or the spike rule) skips, calls ``on_skip`` (or
   ``on_spike``) instead and updates nothing,
4. measures each variable's change and writes one row to the recorder.

The row's norms are those of the gradient the optimizer receives: an
``IndexedSlices`` (an embedding's gradient) is measured with the rows of each
index summed (:func:`~gradlab.training.recording.gradient_squared_norm`), before
and after scaling. The scaling itself decides on the rows as they come, as Keras'
clipping does.
"""

from __future__ import annotations

import tensorflow as tf

from gradlab.scaling.kernels import merge_duplicates
from gradlab.training.recording import Update, gradient_squared_norm, measure_update, weights_before

__all__ = ["instrumented_update"]


def instrumented_update(
    scaler,
    grads,
    variables,
    apply,
    *,
    recorder=None,
    loss=None,
    loss_scale=1.0,
    on_skip=None,
    on_spike=None,
    decide_outside: bool = False,
):
    """Scale ``grads`` with ``scaler`` and update ``variables`` with ``apply(scaled)``; record.

    Args:
      scaler: a :class:`~gradlab.Scaler`.
      grads, variables: the true gradients and their variables.
      apply: ``apply(scaled_grads)`` updates the variables (an optimizer's apply).
        With ``decide_outside=True`` it is called as ``apply(scaled, finite)`` and
        decides itself whether to update (a distributed update must synchronise
        replicas, which ``tf.cond`` forbids inside a replica).
      recorder: a :class:`~gradlab.training.recording.Recorder`, or None to record nothing.
      loss, loss_scale: what the row records besides the gradients.
      on_skip: called, inside the graph, on a skipped step (count it, halve a loss scale).
      on_spike: called instead of ``on_skip`` on a step the scaler's spike rule
        skips (its gradients are finite); default ``on_skip``.

    Returns:
      The plan's :class:`~gradlab.scaler.plan.Info`.
    """
    plan = scaler.plan(grads, variables, loss=loss)
    finite, n = plan.info.update, len(variables)  # "finite": the update goes ahead
    # The statistics of an IndexedSlices are those of its rows summed per index (the scaling's are not).
    sparse = [i for i, g in enumerate(grads) if isinstance(g, tf.IndexedSlices)] if recorder is not None else []
    if recorder is not None:
        reads, weights = weights_before(variables)
        with tf.control_dependencies([weights]):  # the weights measured before the update
            finite = tf.identity(finite)

    def scaled():
        # Keras 3's Adam, RMSprop, ... mishandle repeated indices in IndexedSlices (Keras'
        # global_clipnorm densifies them): hand the optimizer one row per index.
        return [merge_duplicates(g) for g in plan.apply()]

    def measured(run, grads_out):
        """The squared norm of each variable's change, and of each sparse gradient the optimizer got."""
        if recorder is None:
            run()
            return tf.zeros([n]), tf.zeros([0])
        return measure_update(run, variables, reads), _squares([grads_out[i] for i in sparse])

    if decide_outside:
        grads_out = scaled()
        changes, sparse_after = measured(lambda: apply(grads_out, finite), grads_out)
    else:

        def update():
            grads_out = scaled()
            return measured(lambda: apply(grads_out), grads_out)

        def skip():
            if on_spike is None or scaler.spikes is None:
                if on_skip is not None:
                    on_skip()
            else:
                tf.cond(plan.info.spike, on_spike, on_skip or (lambda: None))
            return tf.zeros([n]), tf.gather(plan.info.squared_norms_after, sparse) if sparse else tf.zeros([0])

        changes, sparse_after = tf.cond(finite, update, skip)
    if recorder is not None:
        info = plan.info
        if sparse:
            before = _replace(info.squared_norms, sparse, _squares([grads[i] for i in sparse]))
            info = info._replace(
                norm=tf.sqrt(tf.reduce_sum(before)),
                squared_norms=before,
                squared_norms_after=_replace(info.squared_norms_after, sparse, sparse_after),
            )
        recorder.record(loss=loss, info=info, update=Update(weights, changes), loss_scale=loss_scale)
    return plan.info


def _squares(grads):
    """Squared norms of the gradients (rows of an IndexedSlices summed per index), float32 vector."""
    return tf.stack([gradient_squared_norm(g) for g in grads]) if grads else tf.zeros([0])


def _replace(vector, positions, values):
    """``vector`` with the entries at the (static) ``positions`` replaced by ``values``."""
    entries, new = tf.unstack(vector), tf.unstack(values)
    for at, value in zip(positions, new):
        entries[at] = value
    return tf.stack(entries)
