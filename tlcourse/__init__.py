"""tlcourse: the tested package behind the executable book *Transfer Learning, executable*.

The library (``assets``, ``data``, ``models``, ``transfer``, ``train``, ``checkpoint``, ``claims``,
``metrics``, ``plotting``, ...) never imports a chapter or the command line; ``tlcourse.chapters``
holds one module per chapter (its ``SETTINGS`` table and its table and figure helpers).
Import what you use, e.g. ``from tlcourse.train import fit``.
"""

__version__ = "0.1.0"
