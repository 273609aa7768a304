"""Events beside the shared tables: the outbox write, the gap-safe reader, the consumer loop.

A change writes its event in its own transaction (`record`); consumers read the outbox in commit-safe
order and apply each event once (`common.events.consumer`).
"""

from common.events.outbox import CHANNEL, record

__all__ = ["CHANNEL", "record"]
