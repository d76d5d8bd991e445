"""Training the shipped networks, reproducibly (on top of the models and data; nothing in the methods imports it).

* `shapes_nets`: the small shapes networks, ``python -m xai_ref.training.shapes_nets NAME`` (``nin_shapes``,
  ``vgg_shapes``, ``--biased`` for ``nin_shapes_biased``).
* `attention_transfer`: the attention-transfer teacher and students, ``python -m xai_ref.training.attention_transfer``.
"""


def step(loss, optimiser, schedule) -> float:
    """One optimisation step on ``loss``: clear the gradients, backpropagate, update, advance the learning-rate
    schedule; returns the loss as a number (both trainers smooth it for their progress bar)."""
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    schedule.step()
    return loss.item()
