"""The store's event feed (`Store.events`): which events a page wants, and how a page of
the log is cut.

A page reads the log after a position, oldest first. Positions are the events' `seq`,
gapless per store, the same numbers the live subscriptions' cursors name
(`encode_cursor([seq])`), so a client can poll the feed and follow a subscription from the
same cursor in turn.

With filters, a page looks at no more than `FEED_SCAN` events after its cursor: a long
run of events the filters skip cannot make one page read the whole log, and the page's
end cursor moves past the events it looked at, so the next page starts after them (a
poller always makes progress, even on pages that come back empty).
"""

from __future__ import annotations

from dataclasses import dataclass

from ordergraph.domain.paging import decode_cursor
from ordergraph.domain.reads import EventRecord

#: The most events one page of the feed looks at after its cursor (with filters, events
#: that do not match are looked at and passed over).
FEED_SCAN = 5000


@dataclass(frozen=True)
class EventSelection:
    """Which events a page of the feed wants.

    Neither list given: every event. A list given: the events of that stream of the
    types it names (an empty list names none), and none of the other stream unless its
    list is given too.
    """

    order_types: frozenset[str] | None = None
    inventory_types: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.order_types is None and self.inventory_types is None

    def streams(self) -> dict[str, frozenset[str]]:
        """The types wanted of each stream named by a list ("order", "inventory")."""
        found: dict[str, frozenset[str]] = {}
        if self.order_types is not None:
            found["order"] = self.order_types
        if self.inventory_types is not None:
            found["inventory"] = self.inventory_types
        return found

    def wants(self, record: EventRecord) -> bool:
        if self.everything:
            return True
        types = self.streams().get(record.stream)
        return types is not None and record.type in types


@dataclass(frozen=True)
class FeedPage:
    """A page of the feed: its events in order, the position it started after (0: the
    beginning), the position it has looked through (the page's end cursor; 0 when it
    looked at no event and started at the beginning), and whether the log holds events
    after that position (matching or not)."""

    records: list[EventRecord]
    after: int
    through: int
    has_next: bool


def feed_position(after: str | None) -> int:
    """The position a cursor names (0 for null: the beginning); BadPageRequest if it is
    not an event cursor."""
    if after is None:
        return 0
    value: int = decode_cursor(after, 1, None, [int], "after")[0]
    return value


def cut_page(
    matching: list[EventRecord], first: int, after: int, last_seq: int, scan: int = FEED_SCAN
) -> FeedPage:
    """The page, given what one read of the log found: `matching`, the wanted events in
    (after, after + scan] in order, at most first + 1 of them; and `last_seq`, the log's
    last position in the same snapshot.

    More than `first` found: the page holds the first `first` and ends at the last of
    them. Else the page holds them all and ends at the last position it looked at
    (the window's end, or the log's): every event up to there either is on the page or
    does not match. Events commit in position order (the store's lock), so every position
    up to `last_seq` was there to be read.
    """
    if len(matching) > first:
        records = matching[:first]
        through = records[-1].seq if records else after
        return FeedPage(records, after, through, True)
    through = max(after, min(after + scan, last_seq))
    return FeedPage(matching, after, through, last_seq > through)
