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
"""

from __future__ import annotations

import tensorflow as tf

from gradlab.scaling.kernels import merge_duplicates
from gradlab.training.recording import Update, measure_update, weights_before

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
      The plan's :class:`~gradlab.scaler.scaler.Info`.
    """
    plan = scaler.plan(grads, variables, loss=loss)
    finite, n = plan.info.update, len(variables)  # "finite": the update goes ahead
    if recorder is not None:
        reads, weights = weights_before(variables)
        with tf.control_dependencies([weights]):  # the weights measured before the update
            finite = tf.identity(finite)

    def scaled():
        # Keras 3's Adam, RMSprop, ... mishandle repeated indices in IndexedSlices (Keras'
        # global_clipnorm densifies them): hand the optimizer one row per index.
        return [merge_duplicates(g) for g in plan.apply()]

    def measured(run):
        if recorder is None:
            run()
            return tf.zeros([n])
        return measure_update(run, variables, reads)

    if decide_outside:
        grads_out = scaled()
        changes = measured(lambda: apply(grads_out, finite))
    else:

        def update():
            grads_out = scaled()
            return measured(lambda: apply(grads_out))

        def skip():
            if on_spike is None or scaler.spikes is None:
                if on_skip is not None:
                    on_skip()
            else:
                tf.cond(plan.info.spike, on_spike, on_skip or (lambda: None))
            return tf.zeros([n])

        changes = tf.cond(finite, update, skip)
    if recorder is not None:
        recorder.record(loss=loss, info=plan.info, update=Update(weights, changes), loss_scale=loss_scale)
    return plan.info
