"""Expected business failures, reported to clients as user errors with a code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
    BACKORDER_LIMIT_EXCEEDED = "BACKORDER_LIMIT_EXCEEDED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    NOT_SHIPPABLE = "NOT_SHIPPABLE"
    ALREADY_CLOSED = "ALREADY_CLOSED"
    DUPLICATE = "DUPLICATE"
    UNSAFE_TARGET = "UNSAFE_TARGET"


@dataclass(frozen=True)
class Problem:
    code: ErrorCode
    message: str
    field: tuple[str, ...] | None = None


class DomainError(Exception):
    """One or more problems; the change they belong to must not be applied."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = list(problems)

    @classmethod
    def one(
        cls, code: ErrorCode, message: str, field: Sequence[str | int] | None = None
    ) -> DomainError:
        path = tuple(str(part) for part in field) if field is not None else None
        return cls([Problem(code, message, path)])


def problem(code: ErrorCode, message: str, *field: str | int) -> Problem:
    return Problem(code, message, tuple(str(part) for part in field) if field else None)
