"""Reliability tooling: bad input at scale, and the crash soak.

- :mod:`~triage.reliability.cases`: what a case is (the record under test, its
  victim's setup, the outcome it must get).
- :mod:`~triage.reliability.corpus`: the seeded builder of cases of every kind and
  their interleaving with a valid log; the kinds are built in
  :mod:`~triage.reliability.malformed` (bytes, JSON, schema, keys, times, repeats,
  versions) and :mod:`~triage.reliability.contradictions` (updates that do not fit
  the victim's case).
- :mod:`~triage.reliability.oracle`: judges what the pipeline made of the cases,
  per processed record or from the records of the output topics.
- :mod:`~triage.reliability.soak`: ``triage soak``, a generated log through a worker
  that is SIGKILLed and restarted, checked against the offline replay.

Everything here is synthetic. Personal-looking values are sentinels (``Zq§…¤``)
whose characters cannot occur in base64, so a leak is found by plain search.
Nothing is imported here, so that ``triage --help`` stays fast.
"""
