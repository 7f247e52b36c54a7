"""tlcourse: the tested package behind the executable book *Transfer Learning, executable*.

Modules by role: ``profiles`` (run sizes), ``assets`` (model and data registry), ``data`` and
``models`` (loaders), ``train`` (the one ``fit`` loop), ``transfer`` (freezing, heads, learning
rates), ``checkpoint`` (safetensors), ``metrics``, ``plotting``, ``runtime`` (device, seeds).
Import what you use, e.g. ``from tlcourse.train import fit``.
"""

__version__ = "0.1.0"
