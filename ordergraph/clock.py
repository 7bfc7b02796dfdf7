"""The one time source. Tests move it; nothing else reads the wall clock for business time."""

from __future__ import annotations

import datetime as dt


class Clock:
    def __init__(self) -> None:
        self._offset = dt.timedelta(0)
        self._frozen: dt.datetime | None = None

    def __call__(self) -> dt.datetime:
        if self._frozen is not None:
            return self._frozen
        return dt.datetime.now(dt.UTC) + self._offset

    def advance(self, delta: dt.timedelta) -> None:
        if self._frozen is not None:
            self._frozen += delta
        else:
            self._offset += delta

    def freeze(self, at: dt.datetime) -> None:
        self._frozen = at
