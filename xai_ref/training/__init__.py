"""Training the shipped networks, reproducibly (on top of the models and data; nothing in the methods imports it).

* `shapes_nets`: the small shapes networks, ``python -m xai_ref.training.shapes_nets NAME`` (``nin_shapes``,
  ``vgg_shapes``, ``--biased`` for ``nin_shapes_biased``).
* `attention_transfer`: the attention-transfer teacher and students, ``python -m xai_ref.training.attention_transfer``.
"""
