"""Reliability tooling: bad input at scale, and the crash soak.

- :mod:`triage.reliability.corpus` builds malformed and contradictory records
  (each with the outcome it must get) and interleaves them with valid logs.
- :mod:`triage.reliability.oracle` judges what the pipeline made of them, per
  processed record or from the records of the output topics.
- :mod:`triage.reliability.soak` replays a generated log through a worker that
  is killed with SIGKILL and restarted, and checks that nothing went missing.

Everything here is synthetic. Personal-looking values are sentinels (``Zq§…¤``)
whose characters cannot occur in base64, so a leak is found by plain search.
Nothing is imported here, so that ``triage --help`` stays fast.
"""
