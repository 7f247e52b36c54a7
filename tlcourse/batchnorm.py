"""BatchNorm during transfer: frozen layers keep their statistics; trained ones can be re-estimated.

A BatchNorm layer in train mode normalises with the batch's statistics and updates its running
averages even when its own parameters get no gradient, so a "frozen" layer must run in eval mode.
"""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn
from torch.optim.swa_utils import update_bn

__all__ = ["frozen_norms_to_eval", "recompute_batchnorm_statistics"]

_BatchNorm = nn.modules.batchnorm._BatchNorm


def _is_frozen(module: nn.Module) -> bool:
    # a layer without parameters (affine=False) is not frozen: nothing says it is meant to be
    parameters = list(module.parameters(recurse=False))
    return bool(parameters) and not any(p.requires_grad for p in parameters)


def _stay_in_eval(module: nn.Module, inputs: tuple) -> None:
    module.eval()  # returns None: the inputs pass unchanged


def frozen_norms_to_eval(model: nn.Module) -> list[str]:
    """Put every BatchNorm layer whose parameters are all frozen in eval mode; return their names."""
    names = []
    for name, module in model.named_modules():
        if isinstance(module, _BatchNorm) and _is_frozen(module):
            module.eval()
            names.append(name)
    return names


def recompute_batchnorm_statistics(model: nn.Module, loader: Iterable, device: torch.device | str = "cpu") -> nn.Module:
    """Re-estimate BatchNorm running statistics with one pass over ``(inputs, targets)`` batches (torch's ``update_bn``); frozen layers keep theirs.

    Returns:
        ``model``, in eval mode.
    """
    norms = [module for module in model.modules() if isinstance(module, _BatchNorm)]
    saved = [copy.deepcopy(module.state_dict()) for module in norms]
    # frozen layers run in eval mode during the pass, as during training: the layers after them
    # learned on inputs normalised with the stored statistics
    frozen = [(module, state) for module, state in zip(norms, saved) if _is_frozen(module)]
    hooks = [module.register_forward_pre_hook(_stay_in_eval) for module, _ in frozen]
    seen = []

    def batches():
        for module, state in frozen:  # runs after update_bn's reset, before its first forward pass
            module.load_state_dict(state)
        for batch in loader:
            seen.append(1)
            yield batch

    try:
        update_bn(batches(), model.to(device), torch.device(device))
        if norms and not seen:
            raise ValueError("loader yielded no batches: expected at least one to estimate BatchNorm statistics "
                             "from (the running statistics are left as they were)")
    except BaseException:
        for module, state in zip(norms, saved):
            module.load_state_dict(state)
        raise
    finally:
        for hook in hooks:
            hook.remove()
    return model.eval()
