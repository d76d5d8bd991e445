"""Time the shapes generator: 10 000 one-object 64x64 images with clutter (goal: under 3 s).

Run: ``python benchmarks/shapes_generator.py [--n N] [--repeats R]``. Prints the median wall time of R runs
(and the median CPU time of the process: the generator is single-threaded NumPy, so on an idle machine the
two agree, and on a busy one the CPU time is the fairer number), and the same for two-object and biased
batches for comparison. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

from xai_ref.data import shapes


def median_seconds(repeats: int, **kwargs) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``repeats`` calls of ``shapes.generate``."""
    wall, cpu = [], []
    for r in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        shapes.generate(seed=r, **kwargs)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shapes.generate(100, seed=0)  # warm-up
    for label, kwargs in [
        ("one object, clutter (goal < 3 s)", dict(objects=1)),
        ("one object, no clutter", dict(objects=1, clutter=False)),
        ("two objects, clutter", dict(objects=2)),
        ("one object, clutter, biased", dict(objects=1, biased=True)),
    ]:
        t, c = median_seconds(args.repeats, n=args.n, **kwargs)
        print(
            f"{args.n} images, {label}: median {t:.3f} s wall, {c:.3f} s CPU over {args.repeats} runs "
            f"({1e6 * t / args.n:.0f} us/image)"
        )


if __name__ == "__main__":
    main()
