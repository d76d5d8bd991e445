"""Test set-up: a non-interactive matplotlib backend (set here, never through MPLBACKEND, which kernels
started by nbval would inherit), no figure left open between tests, and helpers several test files share."""

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


@pytest.fixture(scope="module")
def one_thread():
    """One CPU thread: on small tensors thread hand-offs cost more than they save (much more when the
    machine is busy). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def hook_count(model: torch.nn.Module) -> int:
    """How many hooks of any kind are registered on the model's modules (0 after every xai_ref call)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(m._backward_pre_hooks) for m in model.modules())
