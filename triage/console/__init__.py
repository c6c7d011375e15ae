"""``triage console``: the on-call desk's web console.

A read model (:mod:`.projection`, :mod:`.store`, :mod:`.consumer`) projects the
decisions, queue and case-update topics into SQLite; pure view models (:mod:`.views`)
shape it for server-rendered pages (:mod:`.app`); actions (:mod:`.actions`) publish
case updates through the validated publish path; :mod:`.auth` holds accounts,
sessions and CSRF tokens.
"""
