"""Train the small shapes networks, reproducibly: ``python -m xai_ref.training.shapes_nets NAME``.

    python -m xai_ref.training.shapes_nets nin_shapes          # writes xai_ref/models/weights/nin_shapes.pt
    python -m xai_ref.training.shapes_nets vgg_shapes --epochs 8 --seed 0 --out /tmp/vgg.pt
    python -m xai_ref.training.shapes_nets vgg_shapes --biased # the "clever Hans" model: vgg_shapes_biased.pt
    python -m xai_ref.training.shapes_nets nin_shapes --scale 0.06 0.48 --out /tmp/nin.pt  # small to image-filling

Every epoch trains on freshly generated shapes images with clutter (``split="train"``, seeds
``seed * 1000 + epoch`` and ``seed * 1000 + 500 + epoch``), so the network never sees an image twice.
By default every image holds one object (target: its class), which is how the shipped weights were
trained. ``--two-objects F`` makes a fraction F hold two, with the target probability split 1/2 : 1/2
between their classes, so that on a two-object image both classes score high (measured: with F = 1/4
for NIN and 1/2 for VGG, both objects are the top two classes on 99% / 85% of two-object test images,
against 31% / 43% for the shipped one-object nets, at the same one-object accuracy). ``--scale R_MIN R_MAX``
draws the objects' radii from that range (fractions of the image side, :func:`shapes.generate`'s ``scale``;
default :data:`shapes.SCALE`, which the shipped weights were trained with). At the end the network is
evaluated on :data:`TEST_SIZE` one-object images of the held-out ``"test"`` split at the same scale (seed
:data:`TEST_SEED`, never trained on); ``main`` also reports :func:`evaluate_pairs` on two-object test images.
Training is deterministic: the same arguments on the same machine give the same weights, bit for bit
(seeded torch, deterministic algorithms, one thread). One thread and channels-last tensors are also the
fastest setting measured on a shared 2-core CPU: about 3 ms of CPU per training image, so 64 000 images
take 3-3.5 CPU-minutes per network.

From Python::

    from xai_ref.data import shapes
    from xai_ref.training.shapes_nets import evaluate, train
    model, accuracy = train("nin_shapes", epochs=2, progress=False)
    evaluate(model, shapes.generate(2000, seed=7, split="test"))
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..data import shapes
from ..models import shapes_nets as nets
from . import step

__all__ = ["DEFAULTS", "TEST_SEED", "TEST_SIZE", "WEIGHTS_DIR", "evaluate", "evaluate_pairs", "main", "predict",
           "train"]

WEIGHTS_DIR = Path(__file__).parents[1] / "models" / "weights"
TEST_SEED = 1_000_003  # the held-out evaluation batch (split="test"); training seeds are seed*1000+epoch
TEST_SIZE = 5000

#: Per network: epochs, training images per epoch, fraction of them with two objects, peak learning rate
#: (Adam; linear warm-up, cosine decay). The FC head of VGG needs more two-object images than GAP (NIN).
DEFAULTS = {
    "nin_shapes": dict(epochs=8, images_per_epoch=8000, two_objects=0.0, lr=3e-3),
    "vgg_shapes": dict(epochs=8, images_per_epoch=8000, two_objects=0.0, lr=1e-3),
}
BATCH_SIZE = 32  # small batches: faster per image on a 2-core CPU, and fine for Adam


@torch.no_grad()
def scores(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 50) -> torch.Tensor:
    """Class scores (logits) ``(n, n_classes)`` of images ``(n, 3, H, W)`` float32 in [0, 1], in eval mode.

    Small channels-last chunks: 2-3x faster than one big contiguous batch on a CPU.
    """
    was_training = model.training
    model.eval()
    try:
        x = torch.as_tensor(images)
        return torch.cat([model(c.contiguous(memory_format=torch.channels_last)) for c in x.split(batch_size)])
    finally:
        model.train(was_training)


def predict(model: nn.Module, images: np.ndarray | torch.Tensor, batch_size: int = 50) -> np.ndarray:
    """Predicted class ``(n,)`` int64 of each image ``(n, 3, H, W)`` float32 in [0, 1] (eval mode)."""
    return scores(model, images, batch_size).argmax(1).numpy()


def evaluate(model: nn.Module, batch: shapes.ShapesBatch) -> float:
    """Accuracy (fraction in [0, 1]) of ``model`` on the first object's label of each image of ``batch``."""
    if len(batch) == 0:
        raise ValueError("evaluate needs a non-empty batch")
    return float((predict(model, batch.images) == batch.label).mean())


def evaluate_pairs(model: nn.Module, batch: shapes.ShapesBatch) -> float:
    """On a two-object batch: the fraction of images whose two top-scoring classes are the two objects'."""
    if len(batch) == 0 or batch.labels.shape[1] != 2:
        raise ValueError("evaluate_pairs needs a non-empty batch with two objects per image")
    top2 = np.sort(scores(model, batch.images).topk(2, dim=1).indices.numpy(), axis=1)
    return float((top2 == np.sort(batch.labels, axis=1)).all(1).mean())


def _targets(batch: shapes.ShapesBatch, n_classes: int) -> np.ndarray:
    """Target class probabilities ``(n, n_classes)``: each object of an image gets an equal share."""
    t = np.zeros((len(batch), n_classes), np.float32)
    m = batch.labels.shape[1]
    for k in range(m):
        t[np.arange(len(batch)), batch.labels[:, k]] += 1.0 / m
    return t


def train(
    name: str,
    epochs: int | None = None,
    seed: int = 0,
    *,
    progress: bool = True,
    biased: bool = False,
    cue_agreement: float = 1.0,
    n_classes: int = 6,
    images_per_epoch: int | None = None,
    two_objects: float | None = None,
    lr: float | None = None,
    threads: int = 1,
    test_size: int = TEST_SIZE,
    scale: tuple[float, float] = shapes.SCALE,
) -> tuple[nn.Sequential, float]:
    """Train the shapes network ``name`` from scratch; returns ``(model in eval mode, held-out accuracy)``.

    Args:
        name: a key of ``nets.BUILDERS`` (``"nin_shapes"``, ``"vgg_shapes"``).
        epochs: passes of ``images_per_epoch`` fresh images each (default: ``DEFAULTS[name]``).
        seed: fixes the initial weights, the training images and dropout.
        progress: show a tqdm progress bar.
        biased: train on the biased variant (the cue's colour gives the class away); the accuracy is then
            measured on the biased ``"test"`` split, where the cue is random. With the cue always agreeing,
            VGG learns the cue alone (2 epochs: chance accuracy on the test split, predicts the cue's class
            99.6% of the time).
        cue_agreement: biased training: the probability that the cue shows the true class (lower it for a
            network that learns both the cue and the shape).
        n_classes: number of classes (first ``n_classes`` of ``shapes.ALL_CLASSES``).
        images_per_epoch, lr: override ``DEFAULTS[name]``.
        two_objects: override ``DEFAULTS[name]``: the fraction of training images with two objects (soft
            targets 1/2 : 1/2); 0 trains on one-object images only. (Biased: the cue shows the first
            object's class.)
        threads: torch CPU threads while training (fixed, for reproducibility; one is fastest on a shared
            2-core CPU); restored afterwards.
        test_size: images in the held-out test batch (split ``"test"``, seed :data:`TEST_SEED`, same ``scale``).
        scale: ``(r_min, r_max)``, the objects' radii as fractions of the image side, for the training and
            the test images (``shapes.generate``'s ``scale``; two-object images need ``r_max <= 1/4``).
    """
    if name not in nets.BUILDERS:
        raise ValueError(f"unknown network {name!r}; trainable: {tuple(nets.BUILDERS)}")
    cfg = dict(DEFAULTS[name])
    given = dict(epochs=epochs, images_per_epoch=images_per_epoch, two_objects=two_objects, lr=lr)
    cfg.update({k: v for k, v in given.items() if v is not None})
    if cfg["epochs"] < 1 or cfg["images_per_epoch"] < 1:
        raise ValueError(f"epochs and images_per_epoch must be >= 1, got {cfg['epochs']}, {cfg['images_per_epoch']}")
    if not 0.0 <= cfg["two_objects"] <= 1.0:
        raise ValueError(f"two_objects must be a fraction in [0, 1], got {cfg['two_objects']!r}")
    for m in (1, 2) if cfg["two_objects"] > 0 else (1,):
        shapes.generate(0, objects=m, biased=biased, scale=scale)  # a bad scale fails now, not after an epoch

    old_threads, old_det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(seed)
        model = nets.BUILDERS[name](n_classes=n_classes).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
        steps_per_epoch = math.ceil(cfg["images_per_epoch"] / BATCH_SIZE)
        total = cfg["epochs"] * steps_per_epoch
        warmup = max(1, total // 20)
        # linear warm-up, then cosine decay to zero
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
        )
        bar = tqdm(total=total, desc=f"train {name}", unit="batch", disable=not progress)
        model.train()
        for epoch in range(cfg["epochs"]):
            n2 = round(cfg["two_objects"] * cfg["images_per_epoch"])
            parts = [
                shapes.generate(
                    n,
                    seed * 1000 + 500 * (m - 1) + epoch,
                    objects=m,
                    biased=biased,
                    cue_agreement=cue_agreement,
                    n_classes=n_classes,
                    scale=scale,
                )
                for m, n in ((1, cfg["images_per_epoch"] - n2), (2, n2))
                if n > 0
            ]
            order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(cfg["images_per_epoch"]))
            x_all = torch.from_numpy(np.concatenate([p.images for p in parts]))[order]
            y_all = torch.from_numpy(np.concatenate([_targets(p, n_classes) for p in parts]))[order]
            x_all = x_all.contiguous(memory_format=torch.channels_last)
            del parts
            running = None
            for x, y in zip(x_all.split(BATCH_SIZE), y_all.split(BATCH_SIZE)):
                value = step(nn.functional.cross_entropy(model(x), y), opt, schedule)
                running = value if running is None else 0.95 * running + 0.05 * value
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{running:.3f}", refresh=False)
        bar.close()
        model.to(memory_format=torch.contiguous_format)
        test = shapes.generate(test_size, TEST_SEED, biased=biased, n_classes=n_classes, split="test", scale=scale)
        accuracy = evaluate(model, test)
        del test
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)
    return model.eval(), accuracy


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m xai_ref.training.shapes_nets",
                                     description="Train a shapes network.")
    parser.add_argument("name", choices=sorted(nets.BUILDERS))
    parser.add_argument("--epochs", type=int, default=None, help="default: per network, see DEFAULTS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--biased", action="store_true", help="train on the biased variant (NAME_biased.pt)")
    parser.add_argument("--cue-agreement", type=float, default=1.0, help="with --biased: P(cue shows the class)")
    parser.add_argument("--out", type=Path, default=None, help="default: xai_ref/models/weights/NAME[_biased].pt")
    parser.add_argument("--images-per-epoch", type=int, default=None, help="default: per network")
    parser.add_argument("--two-objects", type=float, default=None, help="fraction of two-object images")
    parser.add_argument("--scale", type=float, nargs=2, default=shapes.SCALE, metavar=("R_MIN", "R_MAX"),
                        help=f"object radii as fractions of the image side (default {shapes.SCALE})")
    parser.add_argument("--test-size", type=int, default=TEST_SIZE, help=f"held-out images (default {TEST_SIZE})")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    model, accuracy = train(
        args.name,
        args.epochs,
        args.seed,
        biased=args.biased,
        cue_agreement=args.cue_agreement,
        progress=not args.no_progress,
        images_per_epoch=args.images_per_epoch,
        two_objects=args.two_objects,
        test_size=args.test_size,
        scale=tuple(args.scale),
    )
    out = args.out or WEIGHTS_DIR / f"{args.name}{'_biased' if args.biased else ''}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.float().contiguous() for k, v in model.state_dict().items()}, out)
    split = "biased test split (cue random)" if args.biased else "test split"
    print(f"{args.name}: held-out accuracy {100 * accuracy:.2f}% on {args.test_size} images "
          f"({split}, seed {TEST_SEED})")
    pairs = shapes.generate(args.test_size, TEST_SEED, objects=2, biased=args.biased, split="test")
    pair_accuracy = evaluate_pairs(model, pairs)
    print(f"two-object test images whose top-2 classes are the two objects: {100 * pair_accuracy:.2f}%")
    print(f"trained in {time.perf_counter() - t0:.0f} s; saved {out}")


if __name__ == "__main__":
    main()
