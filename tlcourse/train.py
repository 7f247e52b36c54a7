"""The book's one training loop, :func:`fit`, with :func:`evaluate` and :func:`predict`.

Batches are ``(inputs, targets)`` pairs (images) or dicts with a ``"labels"`` entry (Hugging Face
collators). The model returns logits, or an object with ``.logits``; the loss is always
``loss_fn(logits, targets)``.
"""

from __future__ import annotations

import contextlib
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
from tlcourse.checks import check_device, check_int, check_module, check_optimizer_covers, describe
from tlcourse.history import History
from tlcourse.runtime import move_to_device

__all__ = ["NonFiniteLossError", "choose_precision", "fit", "predict", "evaluate"]

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Metric = Callable[[torch.Tensor, torch.Tensor], float]
_PRECISIONS = ("bf16", "fp16", "fp32")
_ANNOUNCED: set[str] = set()  # precision lines already printed by this process


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def choose_precision(device: torch.device | str, mixed_precision: bool | str) -> str:
    """``"bf16"`` on GPUs with native bf16, ``"fp16"`` (with a gradient scaler) on older GPUs, else ``"fp32"``; a name forces one."""
    if isinstance(mixed_precision, str):
        return mixed_precision
    device = torch.device(device)
    if not mixed_precision or device.type != "cuda":
        return "fp32"
    # Compute capability 8.0 (Ampere) has bf16 tensor cores. Not torch.cuda.is_bf16_supported():
    # it answers True on a T4 (7.5), where bf16 is emulated and slow.
    return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _announce(device: torch.device, precision: str) -> None:
    where = device.type
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        where = f"{torch.cuda.get_device_name(device)}, compute capability {major}.{minor}"
    line = "mixed precision: " + {"fp32": f"off on {where} (fp32)",
                                  "bf16": f"bf16 autocast, no loss scaling needed ({where})",
                                  "fp16": f"fp16 autocast with gradient scaling (torch.amp.GradScaler) ({where})"}[precision]
    if line not in _ANNOUNCED:  # once per process
        _ANNOUNCED.add(line)
        print(line)


def _check_mixed_precision(mixed_precision: Any) -> None:
    if not (isinstance(mixed_precision, bool) or mixed_precision in _PRECISIONS):
        raise ValueError(f"mixed_precision must be a bool or one of {list(_PRECISIONS)}, got {mixed_precision!r}")


def _check_loader(name: str, loader: Any) -> None:
    if loader is None or isinstance(loader, (str, bytes, torch.Tensor, Mapping)) or not hasattr(loader, "__iter__"):
        raise TypeError(f"{name} must be an iterable of batches (a DataLoader or a list), got {describe(loader)}")


def _check_metrics(metrics: Any) -> None:
    if metrics is None:
        return
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a dict of name -> metric(logits, targets), got {describe(metrics)}")
    for name, metric in metrics.items():
        if not callable(metric):
            raise TypeError(f"metrics[{name!r}] must be a callable metric(logits, targets), got {describe(metric)}")


def _split(batch: Any) -> tuple[Any, torch.Tensor]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:  # pairs first: a Mapping check costs more
        return batch[0], batch[1]
    if isinstance(batch, Mapping):
        if "labels" not in batch:
            raise ValueError(f"a dict batch needs a 'labels' entry; got keys {sorted(batch)}")
        return {k: v for k, v in batch.items() if k != "labels"}, batch["labels"]
    raise TypeError(f"a batch must be an (inputs, targets) pair or a dict with 'labels'; got {describe(batch)}")


def _forward(model: nn.Module, inputs: Any) -> torch.Tensor:
    output = model(inputs) if isinstance(inputs, torch.Tensor) or not isinstance(inputs, Mapping) else model(**inputs)
    logits = output if isinstance(output, torch.Tensor) else getattr(output, "logits", output)  # HF: .logits
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model must return logits (a tensor or an object with .logits), got {type(output).__name__}")
    return logits


def _check_targets(logits: torch.Tensor, targets: torch.Tensor, check_range: bool = True) -> None:
    # Here, with the numbers, rather than inside cross_entropy (or as a CUDA device assert).
    if logits.dim() != 2:
        raise ValueError(f"expected logits of shape (batch, num_classes), got {tuple(logits.shape)}")
    if targets.dim() != 1 or targets.shape[0] != logits.shape[0]:
        raise ValueError(f"expected targets of shape ({logits.shape[0]},), got {tuple(targets.shape)}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"expected integer class labels, got dtype {targets.dtype}")
    if check_range and targets.numel():
        low, high = int(targets.min()), int(targets.max())
        if low < 0 or high >= logits.shape[1]:
            raise ValueError(f"labels must be in [0, {logits.shape[1] - 1}] for a model with "
                             f"{logits.shape[1]} outputs; got labels from {low} to {high}")


def fit(
    model: nn.Module,
    train_loader: Iterable,
    optimizer: torch.optim.Optimizer,
    *,
    num_epochs: int,
    loss_fn: LossFunction | None = None,
    val_loader: Iterable | None = None,
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
    """Train ``model`` (the loop, packaged); BatchNorm layers whose parameters are all frozen stay in eval mode, so their statistics do not move.

    Args:
        num_epochs: total epochs, counting those already done when resuming.
        loss_fn: ``loss_fn(logits, targets)``; default softmax cross-entropy.
        scheduler: stepped after every optimiser step.
        mixed_precision: ``True`` picks bf16/fp16/fp32 from the GPU (:func:`choose_precision`); a name forces it.
        max_steps_per_epoch: stop each epoch after this many steps.
        metrics: extra validation metrics ``name -> metric(logits, targets)``.
        checkpoint_path: written at the end of every epoch; ``resume=True`` continues from it exactly.
        progress: a tqdm bar; default on unless ``$CI`` or ``$TLCOURSE_QUIET`` is set.
        on_step: called as ``on_step(epoch, step, loss)`` after every step.

    Under ``torchrun`` the model is wrapped in DistributedDataParallel, each process reads its share,
    metrics are reduced over processes, and only rank 0 prints and saves.
    """
    check_module("model", model)
    check_int("num_epochs", num_epochs)
    check_optimizer_covers(model, optimizer)  # one built before a head swap would not train the new head
    _check_loader("train_loader", train_loader)
    if val_loader is not None:
        _check_loader("val_loader", val_loader)
    check_device("device", device)
    _check_mixed_precision(mixed_precision)
    _check_metrics(metrics)
    if max_steps_per_epoch is not None:
        check_int("max_steps_per_epoch", max_steps_per_epoch)
    if max_grad_norm is not None and not max_grad_norm > 0:
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
    if resume and checkpoint_path is None:
        raise ValueError("resume=True needs a checkpoint_path to resume from")
    with contextlib.suppress(TypeError):  # an iterable without a length is checked after the first epoch
        if len(train_loader) == 0:  # type: ignore[arg-type]
            raise ValueError("train_loader is empty: expected at least one batch (is the data set empty?)")
    loss_fn = loss_fn or F.cross_entropy
    is_distributed = distributed.init_from_environment(device)
    device = distributed.process_device(device)
    main = distributed.is_main_process()
    precision = choose_precision(device, mixed_precision)
    if mixed_precision and main:
        _announce(device, precision)
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None  # keeps small fp16 gradients > 0
    amp = _autocast(device, precision)
    model.to(device)
    network = model  # what runs forward: the model, or its DDP wrapper that averages gradients
    if is_distributed:
        network = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        train_loader = distributed.shard_loader(train_loader)  # type: ignore[arg-type]
    quiet = bool(os.environ.get("TLCOURSE_QUIET") or os.environ.get("CI"))
    show = main and ((not quiet) if progress is None else progress)
    history, start_epoch = History(), 0
    if resume and Path(checkpoint_path).exists():  # type: ignore[arg-type]
        history, start_epoch = restore_training_state(checkpoint_path, model, optimizer, scheduler=scheduler,
                                                      scaler=scaler, loader=train_loader)
    parameters = [p for group in optimizer.param_groups for p in group["params"]]

    for epoch in range(start_epoch + 1, num_epochs + 1):
        network.train()
        frozen_norms_to_eval(model)  # frozen BatchNorm layers keep their running statistics
        if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):  # a DistributedSampler: a new order
            train_loader.sampler.set_epoch(epoch)  # type: ignore[union-attr]
        started = time.perf_counter()
        total_loss, total_seen, kept = 0.0, 0, []  # kept: (logits, targets); accuracy once per epoch
        # A bar fed by hand: tqdm(loader) would open a second iterator and reshuffle a seeded loader.
        bar = tqdm(total=len(train_loader) if hasattr(train_loader, "__len__") else None,  # type: ignore[arg-type]
                   desc=f"epoch {epoch}/{num_epochs}", leave=False) if show else None
        for step, batch in enumerate(train_loader, start=1):
            inputs, targets = host_inputs, host_targets = _split(batch)
            if device.type != "cpu":
                inputs, targets = move_to_device((host_inputs, host_targets), device, non_blocking=True)
            with amp:
                logits = _forward(network, inputs)
                # the label range: every step off the CPU (host copy); on the CPU at step 1 and on failure
                _check_targets(logits, host_targets, check_range=step == 1 or device.type != "cpu")
                try:
                    if logits.dtype != torch.float32 or targets.dtype != torch.int64:
                        logits, targets = logits.float(), targets.long()  # fp32 loss under autocast
                    loss = loss_fn(logits, targets)
                except (IndexError, RuntimeError):
                    _check_targets(logits, host_targets)
                    raise
            loss_value = loss.item()  # the one sync per step
            if not math.isfinite(loss_value):
                intact = checkpoint_path is not None and Path(checkpoint_path).is_file()
                raise NonFiniteLossError(
                    f"loss became {loss_value} at epoch {epoch}, step {step}; training stopped"
                    + (f" and the last good checkpoint {checkpoint_path} is intact" if intact else "")
                    + ". Try a smaller learning rate or gradient clipping (max_grad_norm).")
            optimizer.zero_grad(set_to_none=True)
            (loss if scaler is None else scaler.scale(loss)).backward()
            if max_grad_norm is not None:
                if scaler is not None:
                    scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
            if scaler is None:
                optimizer.step()
            else:
                scaler.step(optimizer)  # skipped if the fp16 gradients overflowed
                scaler.update()
            if scheduler is not None:
                scheduler.step()
            count = targets.shape[0]
            total_loss += loss_value * count
            total_seen += count
            kept.append((logits.detach(), targets))
            if on_step is not None:
                on_step(epoch, step, loss_value)
            if bar is not None:
                bar.update()
                bar.set_postfix(loss=f"{total_loss / total_seen:.4f}", refresh=False)
            if max_steps_per_epoch is not None and step >= max_steps_per_epoch:
                break
        if bar is not None:
            bar.close()
        correct = 0.0
        if kept:
            correct = float((torch.cat([l for l, _ in kept]).argmax(1) == torch.cat([t for _, t in kept])).sum())
        total_loss, correct, total_seen = distributed.sum_across_processes(  # type: ignore[assignment]
            [total_loss, correct, float(total_seen)], device)
        if total_seen == 0:
            raise ValueError("train_loader yielded no batches: expected at least one (is the data set empty?)")
        train_seconds = time.perf_counter() - started  # training only: validation excluded
        record: dict[str, float] = {"epoch": epoch, "train_loss": total_loss / total_seen,
                                    "train_accuracy": correct / total_seen,
                                    "examples_per_second": total_seen / max(train_seconds, 1e-9)}
        if val_loader is not None:  # each rank predicts its share; metrics on everything gathered
            outputs = predict(model, distributed.split_for_evaluation(val_loader), device, precision)
            scores = _score(*distributed.gather_across_processes(*outputs), loss_fn, metrics)
            record.update({f"val_{k}": v for k, v in scores.items() if k != "count"})
        record["seconds"] = time.perf_counter() - started
        history.records.append(record)
        if checkpoint_path is not None and main:
            save_training_state(checkpoint_path, model, optimizer, epoch=epoch, history=history,
                                scheduler=scheduler, scaler=scaler, loader=train_loader)
    return history


def predict(
    model: nn.Module,
    loader: Iterable,
    device: torch.device | str = "cpu",
    mixed_precision: bool | str = False,
    forward: Callable[[nn.Module, Any], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All outputs (fp32) and targets of ``loader``, in order, on the CPU; the model runs in eval mode, then gets its mode back.

    Args:
        forward: ``forward(model, inputs)``; default the model's logits.
    """
    check_module("model", model)
    _check_loader("loader", loader)
    _check_mixed_precision(mixed_precision)
    device = check_device("device", device)
    model.to(device)
    forward = forward or _forward
    was_training = model.training
    model.eval()
    amp = _autocast(device, choose_precision(device, mixed_precision))
    outputs, all_targets = [], []
    try:
        for batch in loader:
            inputs, targets = _split(move_to_device(batch, device))
            with torch.no_grad(), amp:  # not inference_mode: outputs may become a head's training inputs
                outputs.append(forward(model, inputs).float().cpu())
            all_targets.append(targets.cpu())
    finally:
        model.train(was_training)
    if not outputs:
        raise ValueError("loader yielded no batches: expected at least one (is the data set empty?)")
    return torch.cat(outputs), torch.cat(all_targets)


def evaluate(
    model: nn.Module,
    loader: Iterable,
    loss_fn: LossFunction | None = None,
    device: torch.device | str = "cpu",
    metrics: Mapping[str, Metric] | None = None,
    mixed_precision: bool | str = False,
) -> dict[str, float]:
    """``{"loss", "accuracy", "count", **metrics}`` of ``model`` on ``loader``; ``metrics`` maps names to ``metric(logits, targets)``."""
    _check_metrics(metrics)
    logits, targets = predict(model, loader, device=device, mixed_precision=mixed_precision)
    return _score(logits, targets, loss_fn, metrics)


def _score(logits: torch.Tensor, targets: torch.Tensor, loss_fn: LossFunction | None,
           metrics: Mapping[str, Metric] | None) -> dict[str, float]:
    _check_targets(logits, targets)
    with torch.inference_mode():
        result = {"loss": float((loss_fn or F.cross_entropy)(logits, targets.long())),
                  "accuracy": float((logits.argmax(dim=1) == targets).float().mean()),
                  "count": int(targets.shape[0])}
        for name, metric in (metrics or {}).items():
            result[name] = float(metric(logits, targets))
    if not math.isfinite(result["loss"]):
        result["loss"] = float("nan")
    return result
