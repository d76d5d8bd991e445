"""Write one benchmark's section of benchmarks/RESULTS.md, leaving the other sections as they are."""

from __future__ import annotations

import os
import platform
import re
import sys
from datetime import date
from pathlib import Path

import torch

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script it names; rerun the script to refresh it.\n"


def machine() -> str:
    """One line describing where the numbers were measured."""
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), {date.today().isoformat()}")


def write_section(name: str, command: str, body: str) -> None:
    """Replace (or append) the section ``name`` with the command, the machine and ``body`` (Markdown)."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    section = (f"<!-- {name}:start -->\n## {name}\n\nCommand: `{command}`  \nMachine: {machine()}\n\n"
               f"{body.strip()}\n<!-- {name}:end -->")
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)
