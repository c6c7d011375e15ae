"""Analysis over event logs: rule-change impact, the yearly review, capacity what-ifs.

Everything here runs offline, on the same pure core as the worker:

- :mod:`triage.analysis.capture` replays a log and keeps what it produced;
- :mod:`triage.analysis.compare` replays one log under two rule sets (``triage compare``);
- :mod:`triage.analysis.report` builds the yearly review page (``triage report``);
- :mod:`triage.analysis.whatif` simulates responders first-in-first-out versus by
  priority (``triage whatif``);
- :mod:`triage.analysis.cli` holds those commands and ``triage record``.
"""
