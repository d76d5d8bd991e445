"""The course tooling, on top of the library: the checks of the graded assignments
(``lessons/assignments/``) and the tool that makes their student versions.

    from xai_ref.course import check                         # in an assignment notebook
    python -m xai_ref.course make-student|verify|execute ...  # for the teacher (see `student`)

==================  ===================================================================================
``check``           what a notebook imports: every check, ``MISTAKES``, the exercise networks
``runner``          the runner every check shares: cases, reference, named mistakes, the messages
``a1_relu_pooling`` ``a2_saliency`` ``a3_cam`` ``a4_attention`` ``a5_evaluation``: one module per
                    assignment, its references (from `xai_ref.scratch` where it has them) and mistakes
``nets``            ``small_net``, ``colour_net``, ``colour_scenes``, ``COLOURS``
``student``         student versions of the instructor notebooks, with or without nbgrader
==================  ===================================================================================

The library never imports this package.
"""
