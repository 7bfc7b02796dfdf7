"""The PostgreSQL channel on which a commit announces new events.

Written by the unit of work (NOTIFY on commit) and listened to by live delivery
(ordergraph.live.hub); the log stays the carrier, the notification only wakes readers.
"""

NOTIFY_CHANNEL = "ordergraph_events"
