"""Hidden answers: an exercise's answer runs like any cell, but what it prints and draws is shown folded,
under "Answer (click to show)", also after Run All.

    with answer():
        print("the window is", 14, "pixels")      # shown only when the student unfolds it

(JupyterLab's hidden-output flag of a cell is lost when the cell runs again, so hiding the cell is not enough.)
"""

from __future__ import annotations

import base64
import html
import io
from contextlib import contextmanager, redirect_stdout

__all__ = ["answer"]


def _figures() -> list[str]:
    """The open matplotlib figures as ``<img>`` tags (then closed, so the notebook does not show them again)."""
    import matplotlib.pyplot as plt

    tags = []
    for number in plt.get_fignums():
        buf = io.BytesIO()
        plt.figure(number).savefig(buf, format="png", bbox_inches="tight")
        tags.append(f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>")
        plt.close(number)
    return tags


@contextmanager
def answer(summary: str = "Answer (click to show)"):
    """Collect what the block prints and the figures it draws, and show them folded in a ``<details>``.

    Lesson: ``lessons/00_tour.ipynb``.
    """
    from IPython.display import HTML, display

    out = io.StringIO()
    with redirect_stdout(out):
        yield
    text = f"<pre style='margin:4px 0'>{html.escape(out.getvalue())}</pre>" if out.getvalue() else ""
    display(HTML(f"<details><summary style='cursor:pointer;color:#1f77b4'>{html.escape(summary)}</summary>"
                 f"{text}{''.join(_figures())}</details>"))
