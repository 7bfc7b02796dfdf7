"""Live delivery: the tail of the event log, its subscribers, fan-out groups of identical
subscriptions, and the websocket protocols that carry their frames."""
