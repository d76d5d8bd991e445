"""xai-ref: a readable reference for how convolutional networks explain their decisions."""

from . import hooks, trace
from .trace import Term, Trace

__version__ = "0.1.0"
