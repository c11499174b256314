"""Model configurations as JSON-friendly dataclasses (model cards, checkpoints)."""

from __future__ import annotations

from dataclasses import asdict


class ConfigMixin:
    """``to_dict``/``from_dict`` for frozen dataclasses; tuples travel as JSON lists, and
    unknown keys (from newer cards) are ignored."""

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict):
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in fields})
