"""The one training loop of the book: :func:`fit`, with :func:`evaluate` and :func:`predict`.

``fit`` takes batches either as ``(inputs, targets)`` pairs (images) or as dicts with a
``"labels"`` entry (what Hugging Face tokenizers and collators produce). The model returns logits,
or an object with a ``.logits`` attribute (Hugging Face models); the loss is always computed here by
``loss_fn(logits, targets)``, so every chapter trains with the loss it wrote down.

``fit`` can write a checkpoint at the end of every epoch and resume from it exactly (model,
optimizer, scheduler, random number generators, history), stops on a NaN or infinite loss with the
epoch and step, and checks labels against the number of classes before torch fails deep inside.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from tlcourse import distributed
from tlcourse.batchnorm import frozen_norms_to_eval
from tlcourse.checkpoint import restore_training_state, save_training_state
from tlcourse.checks import check_int, check_module, check_optimizer_covers
from tlcourse.history import History
from tlcourse.precision import announce_precision, autocast, make_grad_scaler, resolve_precision
from tlcourse.runtime import move_to_device

__all__ = ["Batch", "LossFunction", "Metric", "NonFiniteLossError", "move_to_device", "fit", "predict", "evaluate"]

Batch = Any
LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Metric = Callable[[torch.Tensor, torch.Tensor], float]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def _split(batch: Batch) -> tuple[Any, torch.Tensor]:
    # (inputs, targets) pairs for images; dicts with "labels" for text. Pairs are tested first:
    # isinstance against the Mapping ABC costs microseconds per step.
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        if "labels" not in batch:
            raise ValueError(f"a dict batch needs a 'labels' entry; got keys {sorted(batch)}")
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        return inputs, batch["labels"]
    raise TypeError(
        "a batch must be an (inputs, targets) pair or a dict with 'labels'; "
        f"got {type(batch).__name__}{' of length ' + str(len(batch)) if isinstance(batch, (list, tuple)) else ''}"
    )


def _forward(model: nn.Module, inputs: Any) -> torch.Tensor:
    tensor = isinstance(inputs, torch.Tensor) or not isinstance(inputs, Mapping)  # Tensor first: cheaper
    output = model(inputs) if tensor else model(**inputs)
    logits = output if isinstance(output, torch.Tensor) else getattr(output, "logits", output)  # HF: .logits
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model must return logits (a tensor or an object with .logits), got {type(output).__name__}")
    return logits


def _check_targets(logits: torch.Tensor, targets: torch.Tensor, check_range: bool = True) -> None:
    # Fail here, with the numbers, rather than inside cross_entropy (or as a CUDA device assert).
    # Shapes and dtype cost nothing; the range (min/max) is checked by fit only off the hot path.
    if logits.dim() != 2:
        raise ValueError(f"expected logits of shape (batch, num_classes), got {tuple(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"expected targets of shape ({logits.shape[0]},), got {tuple(targets.shape)}")
    if targets.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise TypeError(f"expected integer class labels, got dtype {targets.dtype}")
    if check_range and targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= logits.shape[1]:
            raise ValueError(f"labels must be in [0, {logits.shape[1] - 1}] for a model with "
                             f"{logits.shape[1]} outputs; got labels from {low} to {high}")


def _quiet() -> bool:
    return bool(os.environ.get("TLCOURSE_QUIET") or os.environ.get("CI"))


def fit(
    model: nn.Module,
    train_loader: Iterable[Batch],
    optimizer: torch.optim.Optimizer,
    *,
    num_epochs: int,
    loss_fn: LossFunction | None = None,
    val_loader: Iterable[Batch] | None = None,
    scheduler: Any | None = None,
    device: torch.device | str = "cpu",
    mixed_precision: bool | str = False,
    max_grad_norm: float | None = None,
    max_steps_per_epoch: int | None = None,
    metrics: Mapping[str, Metric] | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> History:
    """Train ``model`` for ``num_epochs`` epochs and return the per-epoch history.

    Args:
        model: returns logits of shape ``(batch, num_classes)`` (or an object with ``.logits``).
            It is put in train mode every epoch, except BatchNorm layers whose parameters are all
            frozen: they stay in eval mode, so their running statistics do not drift
            (:func:`tlcourse.batchnorm.frozen_norms_to_eval`).
        train_loader: yields ``(inputs, targets)`` or dicts with ``"labels"``.
        optimizer: over the parameters to train (frozen ones simply are not in it).
        num_epochs: total epochs, counting epochs already done when resuming.
        loss_fn: ``loss_fn(logits, targets)``; defaults to softmax cross-entropy.
        val_loader: evaluated after each epoch when given.
        scheduler: stepped after every optimiser step (warmup/decay schedules are per step).
        device: where to train.
        mixed_precision: ``True``: bf16 autocast on GPUs with native bf16, fp16 autocast with a
            gradient scaler on older GPUs, fp32 on CPU/MPS (:func:`tlcourse.precision.choose_precision`);
            or a precision name (``"bf16"``, ``"fp16"``, ``"fp32"``) to force one.
        max_grad_norm: clip the global gradient norm to this value when given.
        max_steps_per_epoch: stop each epoch after this many steps (the smoke profile uses it).
        metrics: extra validation metrics ``name -> metric(logits, targets)``.
        checkpoint_path: write a checkpoint here at the end of each epoch.
        resume: continue from ``checkpoint_path`` if it exists.
        progress: show a ``tqdm.auto`` bar; default: on, except when ``$CI`` or
            ``$TLCOURSE_QUIET`` is set.
        on_step: called as ``on_step(epoch, step, loss)`` after every step (for logging or tests).

    Under ``torchrun --nproc_per_node=N``: DistributedDataParallel, a DistributedSampler (batch size per
    process), metrics reduced over processes, only rank 0 prints and saves (:mod:`tlcourse.distributed`).

    Returns:
        The :class:`History`.

    Raises:
        ValueError: bad ``num_epochs``, an empty ``train_loader``, labels outside the class range,
            or ``resume`` without ``checkpoint_path``.
        NonFiniteLossError: the loss became NaN or infinite; the message names epoch and step.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.randn(8, 2), torch.tensor([0, 1] * 4))
        >>> net = nn.Linear(2, 2)
        >>> history = fit(net, DataLoader(data, batch_size=4), torch.optim.SGD(net.parameters(), lr=0.1),
        ...               num_epochs=2, progress=False)
        >>> len(history)
        2
    """
    check_int("num_epochs", num_epochs)
    check_module("model", model)
    check_optimizer_covers(model, optimizer)  # one built before a head swap would not train the new head
    if max_steps_per_epoch is not None:
        check_int("max_steps_per_epoch", max_steps_per_epoch)
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path to resume from")
    try:
        if len(train_loader) == 0:  # type: ignore[arg-type]
            raise ValueError("train_loader is empty: expected at least one batch (is the data set empty?)")
    except TypeError:
        pass  # an iterable without a length; emptiness is caught after the first epoch
    loss_fn = loss_fn or F.cross_entropy
    is_distributed = distributed.init_from_environment(device)  # True under torchrun with N > 1
    device = distributed.process_device(device)
    main = distributed.is_main_process()  # only rank 0 prints, shows bars and writes checkpoints
    precision = resolve_precision(device, mixed_precision)
    if mixed_precision and main:
        announce_precision(device, precision)  # printed once per process
    scaler = make_grad_scaler(device, precision)  # fp16 only: scaled losses keep small gradients > 0
    amp = autocast(device, precision)  # one context, entered every step (a no-op for fp32)
    model.to(device)
    network = model  # what runs forward: the model itself, or its DDP wrapper averaging gradients
    if is_distributed:
        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        train_loader = distributed.shard_loader(train_loader)  # type: ignore[arg-type]
    show = main and ((not _quiet()) if progress is None else progress)
    history = History()
    start_epoch = 0

    if resume and checkpoint_path is not None and Path(checkpoint_path).exists():
        history, start_epoch = restore_training_state(checkpoint_path, model, optimizer, scheduler=scheduler,
                                                      scaler=scaler, loader=train_loader)

    for epoch in range(start_epoch + 1, num_epochs + 1):
        network.train()
        frozen_norms_to_eval(model)  # frozen BatchNorm layers keep their running statistics
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):  # a DistributedSampler:
            train_loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]  # new order, same on every rank
        started = time.perf_counter()
        total_loss, total_seen, kept = 0.0, 0, []  # kept: (logits, targets); accuracy once per epoch
        # A bar fed by hand: tqdm.auto(loader) opens a 2nd iterator, which reshuffles a seeded loader.
        bar = tqdm(total=len(train_loader) if hasattr(train_loader, "__len__") else None,  # type: ignore[arg-type]
                   desc=f"epoch {epoch}/{num_epochs}", leave=False) if show else None
        for step, batch in enumerate(train_loader, start=1):
            inputs, targets = host_inputs, host_targets = _split(batch)  # a DataLoader's are on the CPU
            if device.type != "cpu":
                inputs, targets = move_to_device((host_inputs, host_targets), device, non_blocking=True)
            with amp:
                logits = _forward(network, inputs)
                # label range: every step on the host copy off the CPU; on the CPU at step 1 and on failure
                _check_targets(logits, host_targets, check_range=step == 1 or device.type != "cpu")
                try:
                    if logits.dtype != torch.float32 or targets.dtype != torch.int64:  # (a check is cheaper)
                        logits, targets = logits.float(), targets.long()  # fp32 loss under autocast; int64 labels
                    loss = loss_fn(logits, targets)
                except (IndexError, RuntimeError):
                    _check_targets(logits, host_targets)
                    raise
            loss_value = loss.item()  # the one sync per step: NaN check, running loss, on_step
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"loss became {loss_value} at epoch {epoch}, step {step}; training stopped"
                    + (f" and the last good checkpoint {checkpoint_path} is intact" if checkpoint_path and Path(checkpoint_path).is_file() else "")
                    + ". Try a smaller learning rate or gradient clipping (max_grad_norm)."
                )
            optimizer.zero_grad(set_to_none=True)
            (loss if scaler is None else scaler.scale(loss)).backward()
            if max_grad_norm is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], max_grad_norm)
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)  # skipped if fp16 gradients overflowed
                scaler.update()  # then the scale shrinks; it grows after a run of good steps
            if scheduler is not None:
                scheduler.step()
            count = targets.shape[0]
            total_loss += loss_value * count
            kept.append((logits.detach(), targets))
            total_seen += count
            if on_step is not None:
                on_step(epoch, step, loss_value)
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{total_loss / total_seen:.4f}", refresh=False)
            if max_steps_per_epoch is not None and step >= max_steps_per_epoch:
                break
        if bar is not None:
            bar.close()
        # sums over all processes under torchrun, so every rank records the same history
        predicted = torch.cat([logits for logits, _ in kept]).argmax(dim=1) if kept else None  # one argmax
        correct = float((predicted == torch.cat([targets for _, targets in kept])).sum()) if kept else 0.0
        total_loss, correct, total_seen = distributed.sum_across_processes(  # type: ignore[assignment]
            [total_loss, correct, float(total_seen)], device)
        if total_seen == 0:
            raise ValueError("train_loader yielded no batches: expected at least one (is the data set empty?)")
        # training throughput only (validation excluded): what a faster GPU or less padding changes
        train_seconds = time.perf_counter() - started
        record: dict[str, float] = {
            "epoch": epoch,
            "train_loss": total_loss / total_seen,
            "train_accuracy": correct / total_seen,
            "examples_per_second": total_seen / max(train_seconds, 1e-9),
        }
        if val_loader is not None:  # each rank predicts its share; metrics on everything gathered
            outputs = predict(model, distributed.split_for_evaluation(val_loader), device, precision)
            record.update({f"val_{k}": v for k, v in _score(*distributed.gather_across_processes(*outputs),
                                                              loss_fn, metrics).items() if k != "count"})
        record["seconds"] = time.perf_counter() - started
        history.records.append(record)
        if checkpoint_path is not None and main:
            save_training_state(checkpoint_path, model, optimizer, epoch=epoch, history=history,
                                scheduler=scheduler, scaler=scaler, loader=train_loader)
    return history


def predict(
    model: nn.Module,
    loader: Iterable[Batch],
    device: torch.device | str = "cpu",
    mixed_precision: bool | str = False,
    forward: Callable[[nn.Module, Any], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return all outputs and targets of ``loader``, in order, on the CPU: the one collecting loop.

    Logits for evaluation, a frozen backbone's features (:func:`tlcourse.transfer.extract_features`)
    and pooled sentence vectors (:func:`tlcourse.pooling.sentence_features`) all come from here.

    Args:
        model: as for :func:`fit`; run in eval mode, then restored to its previous mode.
        loader: as for :func:`fit`; it should not shuffle if the order matters to the caller.
        device: where to compute.
        mixed_precision: as for :func:`fit`.
        forward: ``forward(model, inputs) -> (batch, ...)`` tensor; default: the model's logits.

    Returns:
        ``(outputs, targets)`` with shapes ``(N, ...)`` (e.g. ``(N, num_classes)``) and ``(N,)``;
        outputs in fp32.

    Raises:
        ValueError: if the loader yields no batches.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.randn(5, 2), torch.zeros(5, dtype=torch.long))
        >>> logits, y = predict(nn.Linear(2, 3), DataLoader(data, batch_size=2)); logits.shape
        torch.Size([5, 3])
    """
    check_module("model", model)
    device = torch.device(device)
    model.to(device)
    forward = forward or _forward
    was_training = model.training
    model.eval()
    all_logits, all_targets = [], []
    try:
        for batch in loader:
            inputs, targets = _split(move_to_device(batch, device))
            # no_grad, not inference_mode: outputs may be cached as inputs for training a head
            with torch.no_grad(), autocast(device, resolve_precision(device, mixed_precision)):
                logits = forward(model, inputs)
            all_logits.append(logits.float().cpu())
            all_targets.append(targets.cpu())
    finally:
        model.train(was_training)
    if not all_logits:
        raise ValueError("loader yielded no batches: expected at least one (is the data set empty?)")
    return torch.cat(all_logits), torch.cat(all_targets)


def evaluate(
    model: nn.Module,
    loader: Iterable[Batch],
    loss_fn: LossFunction | None = None,
    device: torch.device | str = "cpu",
    metrics: Mapping[str, Metric] | None = None,
    mixed_precision: bool | str = False,
) -> dict[str, float]:
    """Loss, accuracy and extra metrics of ``model`` on ``loader``, under inference mode.

    Args:
        model: as for :func:`fit`.
        loader: as for :func:`fit`.
        loss_fn: defaults to softmax cross-entropy.
        device: where to compute.
        metrics: extra ``name -> metric(logits, targets)``.
        mixed_precision: as for :func:`fit`.

    Returns:
        ``{"loss": ..., "accuracy": ..., "count": N, **metrics}``.

    Raises:
        ValueError: if the loader is empty or labels are out of range.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> data = TensorDataset(torch.randn(4, 2), torch.zeros(4, dtype=torch.long))
        >>> sorted(evaluate(nn.Linear(2, 2), DataLoader(data, batch_size=2)))
        ['accuracy', 'count', 'loss']
    """
    logits, targets = predict(model, loader, device=device, mixed_precision=mixed_precision)
    return _score(logits, targets, loss_fn, metrics)


def _score(logits: torch.Tensor, targets: torch.Tensor, loss_fn: LossFunction | None,
           metrics: Mapping[str, Metric] | None) -> dict[str, float]:
    # evaluate's numbers from collected (N, num_classes) logits and (N,) targets
    _check_targets(logits, targets)
    loss_fn = loss_fn or F.cross_entropy
    with torch.inference_mode():
        result = {
            "loss": float(loss_fn(logits, targets.long())),  # cross_entropy takes int64 labels only
            "accuracy": float((logits.argmax(dim=1) == targets).float().mean()),
            "count": int(targets.shape[0]),
        }
        for name, metric in (metrics or {}).items():
            result[name] = float(metric(logits, targets))
    if not math.isfinite(result["loss"]):
        result["loss"] = float("nan")
    return result
