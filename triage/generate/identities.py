"""Pseudonymous references and obviously fake contact details.

Everything here is synthetic. Contact blocks are assembled from a few fixed,
visibly fictional tokens: ``Synthetic-Person-…`` names, phone numbers in the
``06 39 98 xx xx`` block that the French regulator (ARCEP) reserves for
fiction, and addresses in a "rue Fictive" of a "Synthetic-Town".
"""

from __future__ import annotations

from random import Random

from triage.events.inputs import ContactBlock

_HEX = "0123456789ABCDEF"
_STREETS = ("rue Fictive", "avenue Imaginaire", "impasse de l'Exemple", "place du Test")
_NOTES = (
    None,
    None,
    "Synthetic note: prefers a call in the morning.",
    "Synthetic note: do not leave messages.",
    "Synthetic note: interpreter needed.",
)

RESPONDERS_PER_UNIT = 12
"""How many distinct responder references each unit uses."""

# Who answers each side queue, and who grants each measure (a CloudEvents
# source slug, ``urn:dv:responder:<slug>``). The primary queues are answered by
# the unit the engine routed to.
QUEUE_SERVICE = {"child-protection": "ase-62", "judicial": "parquet-62"}
MEASURE_SERVICE = {
    "tgd": "parquet-62",
    "bar": "parquet-62",
    "oppi": "jaf-62",
    "op": "jaf-62",
    "shelter": "siao-62",
}


class RefMint:
    """Unique random references: ``V-…`` victims, ``S-…`` suspects, devices."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def _fresh(self, prefix: str, digits: int) -> str:
        while True:
            ref = prefix + "".join(self._rng.choice(_HEX) for _ in range(digits))
            if ref not in self._used:
                self._used.add(ref)
                return ref

    def victim(self) -> str:
        """A victim reference, ``V-`` and 8 hexadecimal digits."""
        return self._fresh("V-", 8)

    def suspect(self) -> str:
        """A suspect reference, ``S-`` and 8 hexadecimal digits."""
        return self._fresh("S-", 8)

    def device(self, kind: str) -> str:
        """A device reference whose prefix matches the device kind (``TGD-``/``BAR-``)."""
        return self._fresh(f"{kind.upper()}-", 6)


def slug(unit_id: str) -> str:
    """A unit id as a CloudEvents source segment: ``PN-LENS`` → ``pn-lens``."""
    return unit_id.lower()


def responder(service: str, number: int) -> str:
    """Responder ``number`` of a unit or service: ``pn-lens``, 3 → ``R-PNLENS03``."""
    return "R-" + "".join(c for c in service.upper() if c.isalnum()) + f"{number:02d}"


def contact_block(rng: Random, person: int) -> ContactBlock:
    """A visibly fictional contact block for synthetic person number ``person``."""
    return ContactBlock(
        name=f"Synthetic-Person-{person:05d}",
        phone=f"+33 6 39 98 {rng.randrange(100):02d} {rng.randrange(100):02d}",
        address=f"{rng.randrange(1, 200)} {rng.choice(_STREETS)}, Synthetic-Town",
        notes=rng.choice(_NOTES),
    )
