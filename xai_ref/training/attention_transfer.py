"""Teacher-student training: a student alone, with attention transfer, knowledge distillation, both, or a
CAM-matching loss. ``python -m xai_ref.training.attention_transfer ...``::

    python -m xai_ref.training.attention_transfer teacher                  # writes xai_ref/models/weights/at_teacher.pt
    python -m xai_ref.training.attention_transfer student --setting alone  # at_student.pt: trained alone
    python -m xai_ref.training.attention_transfer student --setting at --out at_student_at.pt
    python -m xai_ref.training.attention_transfer student --setting kd --seed 2 --out /tmp/s.pt

The task (:func:`task`): shapes images 32x32, 10 classes, clutter on, a SMALL fixed training set of
:data:`N_TRAIN` images (seed :data:`TRAIN_SEED`) and :data:`N_TEST` held-out images (split ``"test"``,
seed :data:`TEST_SEED`). The seed of a run fixes the initial weights and the order of the batches.

Settings, with ``CE`` the cross-entropy with the true class ``y`` and ``s``/``t`` student/teacher logits:

- ``"alone"``: ``CE(s, y)``.
- ``"at"`` (Zagoruyko & Komodakis 2017): ``CE(s, y) + beta/2 * sum_j at_loss(A_S^j, A_T^j)`` over the three
  group outputs j, p = 2, beta = 1000; ``at_loss`` is the reference code's ``mean_{b,i}(q_S - q_T)^2`` with
  ``q = vec(Q)/||vec(Q)||_2``, ``Q = sum_c A_c^2`` (:func:`xai_ref.attention.at_loss`).
- ``"kd"`` (Hinton et al. 2015), T = 4, alpha = 0.9:
  ``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)``, the KL averaged over the
  batch (``F.kl_div(log_softmax(s/T), softmax(t/T), reduction="batchmean")``; the T^2 keeps the soft
  term's gradients on the scale of the hard one's). The KL is taken from the teacher's softened
  distribution to the student's, the standard direction (and the one ``F.kl_div`` computes).
- ``"at+kd"``: the KD loss + ``beta/2 * sum_j at_loss``.
- ``"cam"``: the interpretability loss of Grad-CAM++ (Chattopadhyay et al. 2018, sec. 7), with CAMs in
  place of Grad-CAM++ maps (differentiable, and exact for a GAP -> linear head):
  ``CE(s, y) + lam * 1/B sum_b || m_S - m_T ||_2^2``, ``m = vec(M_y)/||vec(M_y)||_2``,
  ``M_y = sum_k W_{y,k} f_k`` at the last group (8x8), true class y, lam = :data:`CAM_LAMBDA`.

The teacher is frozen (eval mode); its targets (logits, normalised attention maps of each group, the
normalised CAM of the true class) are computed once for the fixed training set (no augmentation), so an
AT or KD step costs no more than a plain one. Training: AdamW, one-cycle (warm-up, cosine) schedule by default,
or the AT paper's SGD with step decay (``schedule="step"``, see :func:`_schedule`); a number of epochs or of
``steps``; batch :data:`BATCH_SIZE`, one CPU thread, deterministic algorithms.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..attention import at_loss, normalised_attention
from ..data import shapes
from ..models import at_nets
from . import step

__all__ = ["SCHEDULES", "SETTINGS", "at_distance", "error", "evaluate", "main", "task", "teacher_targets",
           "train_student", "train_teacher", "transfer_loss"]

SETTINGS = ("alone", "at", "kd", "at+kd", "cam")
WEIGHTS_DIR = Path(__file__).parents[1] / "models" / "weights"
N_CLASSES, SIZE = 10, 32
N_TRAIN, TRAIN_SEED = 1500, 7
N_TEST, TEST_SEED = 1000, 1_000_003
BATCH_SIZE = 50
BETA, P = 1000.0, 2          # attention transfer (the paper's beta and p)
KD_T, KD_ALPHA = 4.0, 0.9    # knowledge distillation (Hinton et al.; the AT paper's values)
CAM_LAMBDA = 10.0            # weight of the CAM loss (about beta/2 / (8*8): AT's weight on the 8x8 maps)
#: epochs and peak learning rate per network (the one-cycle schedule)
DEFAULTS = {"teacher": dict(epochs=30, lr=3e-3), "student": dict(epochs=12, lr=5e-3)}
SCHEDULES = ("onecycle", "step")
#: the "step" schedule (the AT paper's CIFAR one): SGD at lr 0.1, times 0.2 at 30%, 60% and 80% of the steps
STEP_LR, STEP_MILESTONES, STEP_GAMMA = 0.1, (0.3, 0.6, 0.8), 0.2


def task(n_train: int = N_TRAIN, n_test: int = N_TEST) -> tuple[shapes.ShapesBatch, shapes.ShapesBatch]:
    """The hard shapes task: (training batch, held-out batch), 32x32, 10 classes, clutter, one object."""
    kw = dict(n_classes=N_CLASSES, size=SIZE, clutter=True)
    return (shapes.generate(n_train, TRAIN_SEED, split="train", **kw),
            shapes.generate(n_test, TEST_SEED, split="test", **kw))


def _cam(feats: list[torch.Tensor], fc: nn.Linear, y: torch.Tensor) -> torch.Tensor:
    """Normalised class activation maps of class y: ``vec(M_y)/||vec(M_y)||_2`` (B, h*w), differentiable."""
    M = torch.einsum("bk,bkhw->bhw", fc.weight[y], feats[-1]).flatten(1)
    return M / M.norm(dim=1, keepdim=True).clamp(min=1e-12)


@torch.no_grad()
def teacher_targets(teacher: at_nets.ATNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 100) -> dict:
    """The frozen teacher's targets for images x (n,3,H,W) with labels y: ``logits`` (n, classes), ``q``
    (a list of the normalised attention maps (n, h*w) of each group, p = :data:`P`), ``cam`` (n, h*w)."""
    was = teacher.training
    teacher.eval()
    out = {"logits": [], "q": [[] for _ in at_nets.GROUPS], "cam": []}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        feats, logits = teacher.groups(xb)
        out["logits"].append(logits)
        for j, A in enumerate(feats):
            out["q"][j].append(normalised_attention(A, P))
        out["cam"].append(_cam(feats, teacher.fc, yb))
    teacher.train(was)
    return {"logits": torch.cat(out["logits"]), "q": [torch.cat(q) for q in out["q"]], "cam": torch.cat(out["cam"])}


def transfer_loss(setting: str, feats: list[torch.Tensor], logits: torch.Tensor, y: torch.Tensor, fc: nn.Linear,
                  target: dict | None = None, beta: float = BETA, T: float = KD_T, alpha: float = KD_ALPHA,
                  lam: float = CAM_LAMBDA) -> torch.Tensor:
    """The training loss of one batch for ``setting`` (see the module docstring). ``feats``/``logits``: the
    student's group outputs and scores; ``target``: the teacher's :func:`teacher_targets` for this batch.

    The AT term equals ``beta/2 * at_loss(feats, teacher_feats, p=2)``; it is computed from the teacher's
    precomputed normalised maps ``q_T`` as ``sum_j mean((normalised_attention(A_S^j) - q_T^j)^2)``."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {SETTINGS}")
    ce = F.cross_entropy(logits, y)
    if setting == "alone":
        return ce
    if target is None:
        raise ValueError(f"setting {setting!r} needs the teacher's targets")
    if setting in ("kd", "at+kd"):
        kl = F.kl_div(F.log_softmax(logits / T, 1), F.softmax(target["logits"] / T, 1), reduction="batchmean")
        loss = alpha * T * T * kl + (1 - alpha) * ce
    else:
        loss = ce
    if setting in ("at", "at+kd"):
        loss = loss + beta / 2 * sum(((normalised_attention(A, P) - q) ** 2).mean()
                                     for A, q in zip(feats, target["q"]))
    if setting == "cam":
        loss = loss + lam * ((_cam(feats, fc, y) - target["cam"]) ** 2).sum(1).mean()
    return loss


def _schedule(model: nn.Module, schedule: str, lr: float, total: int):
    """(optimiser, scheduler) for ``total`` steps s = 0 .. total-1; the learning rate at step s is ``lr * f(s)``:

    - ``"onecycle"`` (our default): AdamW, weight decay 5e-4, ``f(s) = min((s+1)/w, (1 + cos(pi s/total))/2)``,
      a linear warm-up over ``w = total/20`` steps then a cosine decay to 0.
    - ``"step"`` (the AT paper's CIFAR schedule, lr 0.1 dropped by 0.2 at epochs 60, 120, 160 of 200): SGD,
      momentum 0.9, weight decay 5e-4, ``f(s) = 0.2^k`` with k the number of fractions in
      :data:`STEP_MILESTONES` = (0.3, 0.6, 0.8) that ``s/total`` has reached."""
    if schedule == "onecycle":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
        warmup = max(1, total // 20)
        f = lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))  # noqa: E731
    elif schedule == "step":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        f = lambda s: STEP_GAMMA ** sum(s >= m * total for m in STEP_MILESTONES)  # noqa: E731
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, f)


def _batches(n: int, steps: int, gen: torch.Generator):
    """The index tensors of ``steps`` batches of :data:`BATCH_SIZE`: passes (epochs) over range(n), each in a
    fresh random order drawn from ``gen``; the last pass stops wherever the step count runs out."""
    done = 0
    while True:
        for idx in torch.randperm(n, generator=gen).split(BATCH_SIZE):
            if done == steps:
                return
            done += 1
            yield idx


def _fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, setting: str, targets: dict | None, epochs: int,
         lr: float, seed: int, progress: bool, desc: str, beta: float = BETA, schedule: str = "onecycle",
         steps: int | None = None) -> list[float]:
    """Train ``model`` in place for ``steps`` batches (default: ``epochs`` passes over x) with
    :func:`_schedule`; returns the running loss at each epoch's end (and at the last step)."""
    per_epoch = math.ceil(len(x) / BATCH_SIZE)
    total = steps or epochs * per_epoch
    opt, sched = _schedule(model, schedule, lr, total)
    gen = torch.Generator().manual_seed(seed)
    history, running = [], None
    model.train().to(memory_format=torch.channels_last)  # ~1.5x faster on a CPU
    x = x.contiguous(memory_format=torch.channels_last)
    with tqdm(total=total, desc=desc, unit="batch", disable=not progress) as bar:
        for s, idx in enumerate(_batches(len(x), total, gen), start=1):
            feats, logits = model.groups(x[idx])
            tb = None if targets is None else {"logits": targets["logits"][idx], "cam": targets["cam"][idx],
                                               "q": [q[idx] for q in targets["q"]]}
            value = step(transfer_loss(setting, feats, logits, y[idx], model.fc, tb, beta=beta), opt, sched)
            running = value if running is None else 0.9 * running + 0.1 * value
            bar.update()
            bar.set_postfix(loss=f"{running:.3f}", refresh=False)
            if s % per_epoch == 0 or s == total:
                history.append(running)
    model.to(memory_format=torch.contiguous_format)
    return history


class _Deterministic:
    """One thread, deterministic algorithms, restored afterwards."""

    def __init__(self, threads: int = 1):
        self.threads = threads

    def __enter__(self):
        self.old = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old[0])
        torch.use_deterministic_algorithms(self.old[1])


def _tensors(batch: shapes.ShapesBatch) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(batch.images), torch.from_numpy(batch.label)


@torch.no_grad()
def evaluate(model: nn.Module, batch: shapes.ShapesBatch, batch_size: int = 200) -> float:
    """Accuracy (fraction) of ``model`` (eval mode) on the first object's label of each image."""
    was = model.training
    model.eval()
    x, y = _tensors(batch)
    correct = sum(int((model(xb).argmax(1) == yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    model.train(was)
    return correct / len(batch)


def error(model: nn.Module, batch: shapes.ShapesBatch) -> float:
    """Held-out error in percent."""
    return 100.0 * (1.0 - evaluate(model, batch))


@torch.no_grad()
def at_distance(student: at_nets.ATNet, teacher: at_nets.ATNet, images, p: float = P) -> float:
    """``sum_j at_loss(A_S^j, A_T^j)`` over the three groups on ``images`` (both nets in eval mode): how far
    the student's attention maps are from the teacher's (0: identical maps)."""
    x = torch.as_tensor(images)
    ws, wt = student.training, teacher.training
    student.eval(), teacher.eval()
    total = 0.0
    for xb in x.split(200):
        total += float(at_loss(student.groups(xb)[0], teacher.groups(xb)[0], p)) * len(xb)
    student.train(ws), teacher.train(wt)
    return total / len(x)


def _config(net: str, epochs, lr, schedule: str) -> dict:
    """Epochs and learning rate: those given, else :data:`DEFAULTS` (lr :data:`STEP_LR` for ``"step"``)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {SCHEDULES}")
    cfg = {**DEFAULTS[net], **({"lr": STEP_LR} if schedule == "step" else {})}
    return {**cfg, **{k: v for k, v in dict(epochs=epochs, lr=lr).items() if v is not None}}


def train_teacher(epochs: int | None = None, seed: int = 0, *, lr: float | None = None, progress: bool = True,
                  data=None, schedule: str = "onecycle", steps: int | None = None) -> tuple[at_nets.ATNet, float]:
    """Train the teacher on the task's training set (or ``data``); returns (model in eval mode, held-out
    accuracy). ``schedule``: see :func:`_schedule`; ``steps``: train for this many batches instead of epochs."""
    cfg = _config("teacher", epochs, lr, schedule)
    train, test = data or task()
    with _Deterministic():
        torch.manual_seed(seed)
        model = at_nets.at_teacher(N_CLASSES)
        _fit(model, *_tensors(train), "alone", None, cfg["epochs"], cfg["lr"], seed, progress, "teacher",
             schedule=schedule, steps=steps)
        model.eval()
        return model, evaluate(model, test)


def train_student(setting: str = "alone", teacher: at_nets.ATNet | None = None, seed: int = 0, *,
                  epochs: int | None = None, lr: float | None = None, progress: bool = True, data=None,
                  targets: dict | None = None, beta: float = BETA, schedule: str = "onecycle",
                  steps: int | None = None) -> tuple[at_nets.ATNet, dict]:
    """Train a student in ``setting`` (one of :data:`SETTINGS`) with the frozen ``teacher`` (default: the
    shipped ``at_teacher``; unused for ``"alone"``). Returns (model in eval mode, info) with info keys
    ``accuracy``, ``error`` (held-out, %), ``at_before``/``at_after`` (:func:`at_distance` on the held-out
    images, at initialisation and after training), ``seconds``, ``history`` (loss per epoch).
    ``targets``: precomputed :func:`teacher_targets` for the training set (to share between runs);
    ``beta``: the weight of the AT term (settings "at", "at+kd"); ``schedule``: see :func:`_schedule`;
    ``steps``: train for this many batches instead of ``epochs`` passes over the training set."""
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; choose one of {SETTINGS}")
    cfg = _config("student", epochs, lr, schedule)
    train, test = data or task()
    if teacher is None:
        from ..models import load
        teacher = load("at_teacher")
    teacher.eval()
    x, y = _tensors(train)
    t0 = time.perf_counter()
    with _Deterministic():
        if setting != "alone" and targets is None:
            targets = teacher_targets(teacher, x, y)
        torch.manual_seed(seed)
        model = at_nets.at_student(N_CLASSES)
        before = at_distance(model, teacher, test.images)
        history = _fit(model, x, y, setting, None if setting == "alone" else targets, cfg["epochs"], cfg["lr"],
                       seed, progress, f"student {setting} seed {seed}", beta, schedule, steps)
        model.eval()
        seconds = time.perf_counter() - t0
        acc = evaluate(model, test)
        info = dict(setting=setting, seed=seed, beta=beta, accuracy=acc, error=100 * (1 - acc), at_before=before,
                    at_after=at_distance(model, teacher, test.images), seconds=seconds, history=history)
    return model, info


def _save(model: nn.Module, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.float().contiguous() for k, v in model.state_dict().items()}, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m xai_ref.training.attention_transfer",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["teacher", "student", "ship"],
                        help="train the teacher, one student, or everything shipped "
                             "(teacher, at_student, at_student_at)")
    parser.add_argument("--setting", choices=SETTINGS, default="alone")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="a path, or a file name in the weights folder")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    progress = not args.no_progress
    data = task()
    if args.what in ("teacher", "ship"):
        t0 = time.perf_counter()
        teacher, acc = train_teacher(args.epochs, args.seed, progress=progress, data=data)
        out = WEIGHTS_DIR / "at_teacher.pt" if args.what == "ship" or args.out is None else args.out
        _save(teacher, out if out.is_absolute() or out.parent != Path(".") else WEIGHTS_DIR / out)
        print(f"teacher: held-out error {100 * (1 - acc):.2f}% ({time.perf_counter() - t0:.0f} s); saved {out}")
    if args.what in ("student", "ship"):
        shipped = [("alone", None), ("at", Path("at_student_at.pt"))]
        runs = [(args.setting, args.out)] if args.what == "student" else shipped
        teacher = teacher if args.what == "ship" else None
        for setting, out in runs:
            model, info = train_student(setting, teacher, args.seed,
                                        epochs=args.epochs if args.what == "student" else None,
                                        progress=progress, data=data)
            out = out or Path("at_student.pt" if setting == "alone" else f"at_student_{setting.replace('+', '_')}.pt")
            out = out if out.is_absolute() or out.parent != Path(".") else WEIGHTS_DIR / out
            _save(model, out)
            print(f"student ({setting}, seed {args.seed}): held-out error {info['error']:.2f}%, attention distance "
                  f"to the teacher {info['at_before']:.4f} -> {info['at_after']:.4f} ({info['seconds']:.0f} s); "
                  f"saved {out}")


if __name__ == "__main__":
    main()
