"""What every part of the oracle shares: its settings, logging, metrics and event-loop watch,
and the group commit that stores readings and callbacks a group per transaction.

``settings`` reads the environment; ``logs`` renders structlog and the standard library's
loggers as one JSON line each; ``metrics`` holds the Prometheus registry; ``runtime`` measures
what stalls the event loop; ``group_commit`` shares one commit among everything queued meanwhile.
"""
