"""tlcourse: the tested package behind the executable book *Transfer Learning, executable*.

The library, one concept per module (it never imports a chapter or the command line):

- ``profiles`` (where and how the book runs: device, precision, asset policy, claim checking),
  ``runtime`` (seeds, devices, whether a host answers), ``checks`` (argument checks), ``assets`` (the model and data
  registry: canonical or stand-in), ``data`` (data sets, loaders, splits, downloads);
- ``images`` and ``text`` (inputs for ImageNet backbones and BERT-like encoders), ``pooling``
  (sentence vectors from token vectors), ``models``
  (pretrained models through torchvision's weights enums and transformers' ``Auto*``);
- ``transfer`` (freeze, heads, cached features, LP-FT), ``batchnorm`` (statistics during transfer),
  ``optimization`` (parameter groups in one shape, schedules), ``train`` (``fit``, ``predict``,
  ``evaluate``), ``precision`` (bf16, or fp16 with a gradient scaler, by GPU capability),
  ``distributed`` (``fit`` under torchrun), ``history``, ``checkpoint`` (safetensors; a training state
  saved and restored), ``fusion`` (weight space: WiSE-FT, soups), ``ensembles`` (output space), ``lora`` (LoRA written out), ``footprint`` (training memory,
  checkpoint size), ``rehearsal`` (synthetic canonical assets for the gpu path on a CPU);
- ``metrics`` (accuracy, paired differences), ``claims`` (lessons checked by code), ``plotting``;
- ``cli`` (``python -m tlcourse``), on top, imported by nobody.

``tlcourse.chapters`` holds one module per chapter (``concepts``/``concepts_experiments``,
``math_losses``/``math_backprop``/``math_optim``, ``vgg16``, ``bert``, ``peft``, ``fusion``): its ``SETTINGS``
table of sizes per profile, read with ``profiles.settings_for(SETTINGS, profile)``, and its helpers.
Import what you use, e.g. ``from tlcourse.train import fit``.
"""

__version__ = "0.1.0"
