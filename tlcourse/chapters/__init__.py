"""One module per chapter of the book, named after it: its settings table and its helpers.

``concepts``, ``math``, ``vgg16``, ``bert``, ``peft``, ``fusion``. Each holds ``SETTINGS``, one frozen dataclass
of named sizes per profile, read with ``tlcourse.profiles.settings_for(SETTINGS, profile)``.
Chapters import the library (:mod:`tlcourse`); the library never imports a chapter.
"""
