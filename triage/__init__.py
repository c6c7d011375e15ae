"""triage: an event-driven triage pipeline for domestic-violence reports.

Reports come in on Kafka; a pure, versioned rule set scores them; each case is
routed to protection queues with deadlines; missed deadlines escalate. The same
core runs offline (replay) and inside the Faust worker, so both decide alike.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
