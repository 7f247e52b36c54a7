"""What :func:`tlcourse.train.fit` returns: one row of measurements per epoch."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "History",
]


@dataclass
class History:
    """Per-epoch records of one ``fit`` run.

    Attributes:
        records: one dict per epoch with ``epoch``, ``train_loss``, ``train_accuracy``,
            ``examples_per_second`` (training only), ``seconds`` (training and validation) and, with a validation loader, ``val_loss``, ``val_accuracy`` and one entry
            per extra metric.

    Example:
        >>> h = History([{"epoch": 1, "train_loss": 0.5}])
        >>> h["train_loss"]
        [0.5]
    """

    records: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.records, list) or not all(isinstance(r, dict) for r in self.records):
            raise TypeError(f"records must be a list of dicts, one per epoch, got {type(self.records).__name__} "
                            f"{self.records!r:.60}")

    def __getitem__(self, name: str) -> list[float]:
        if not self.records or name not in self.records[0]:
            known = sorted(self.records[0]) if self.records else []
            raise KeyError(f"history has no column {name!r}; columns: {known}")
        return [record[name] for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    @property
    def last(self) -> dict[str, float]:
        """The record of the last epoch.

        Returns:
            A dict of column names to values.
        """
        if not self.records:
            raise ValueError("history is empty: no epoch has finished")
        return self.records[-1]

    def to_dict(self) -> dict[str, list[dict[str, float]]]:
        """Return a JSON-serialisable copy.

        Returns:
            ``{"records": [...]}``.
        """
        return {"records": [dict(record) for record in self.records]}
