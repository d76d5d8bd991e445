"""Test set-up: a non-interactive matplotlib backend (set here, never through MPLBACKEND, which kernels
started by nbval would inherit) and no figure left open between tests."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures_and_seed():
    torch.manual_seed(0)
    yield
    plt.close("all")
