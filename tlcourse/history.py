"""What :func:`tlcourse.train.fit` returns: one record of measurements per epoch."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["History"]


@dataclass
class History:
    """Per-epoch records of one ``fit`` run; ``history["train_loss"]`` is one column.

    A record holds ``epoch``, ``train_loss``, ``train_accuracy``, ``examples_per_second`` (training
    only), ``seconds`` (with validation) and, with a validation loader, ``val_loss``,
    ``val_accuracy`` and one ``val_<name>`` per extra metric.
    """

    records: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, name: str) -> list[float]:
        if not self.records or name not in self.records[0]:
            raise KeyError(f"history has no column {name!r}; columns: {sorted(self.records[0]) if self.records else []}")
        return [record[name] for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict[str, float]:
        """The record of the last epoch."""
        if not self.records:
            raise ValueError("history is empty: no epoch has finished")
        return self.records[-1]

    def to_dict(self) -> dict[str, list[dict[str, float]]]:
        """A JSON-serialisable copy, ``{"records": [...]}``."""
        return {"records": [dict(record) for record in self.records]}
