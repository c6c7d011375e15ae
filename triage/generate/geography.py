"""Where reports come from: communes of the unit directory, weighted by size.

Weights are rounded public population figures; a gendarmerie commune stands for
its rural surroundings too, so it weighs more than its own population. A small
share of reports names a real-looking Pas-de-Calais INSEE code that the
directory does not know, so that the unknown-commune fallback gets exercised.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from random import Random

from triage.routing.units import UnitDirectory

UNKNOWN_COMMUNE_SHARE = 0.02
DEFAULT_WEIGHT = 5_000
RURAL_HINTERLAND = 3.0
"""A gendarmerie commune stands for its canton: weight × this."""

# Approximate populations (public INSEE figures, rounded) of the directory's communes.
_POPULATION = {
    "62193": 67_000,
    "62041": 41_000,
    "62160": 40_000,
    "62498": 31_000,
    "62510": 30_000,
    "62427": 26_000,
    "62119": 25_000,
    "62178": 21_000,
    "62065": 17_500,
    "62215": 17_000,
    "62765": 14_000,
    "62108": 14_000,
    "62643": 13_500,
    "62413": 12_500,
    "62186": 12_000,
    "62758": 11_500,
    "62570": 11_500,
    "62617": 11_500,
    "62525": 11_000,
    "62318": 11_000,
    "62250": 10_500,
    "62548": 10_000,
    "62637": 10_000,
    "62048": 10_000,
    "62516": 10_000,
    "62014": 9_800,
    "62771": 9_700,
    "62040": 9_500,
    "62667": 9_000,
    "62473": 8_500,
    "62004": 7_700,
    "62457": 7_500,
    "62893": 6_800,
    "62753": 6_300,
    "62397": 5_800,
    "62263": 5_700,
    "62244": 5_700,
    "62624": 5_700,
    "62099": 5_600,
    "62057": 5_300,
    "62560": 5_000,
    "62268": 5_000,
    "62767": 5_000,
    "62861": 4_700,
    "62038": 4_500,
    "62826": 4_200,
    "62080": 4_000,
    "62534": 3_800,
    "62447": 2_200,
    "62063": 2_000,
    "62588": 2_000,
}
_HIGHEST_CODE = 62_910
"""Pas-de-Calais INSEE codes run from 62001 to about 62908."""


class CommuneSampler:
    """Draws an INSEE code: a directory commune by weight, or now and then an unknown one."""

    def __init__(self, units: UnitDirectory) -> None:
        self._codes = sorted(units.by_commune)
        if not self._codes:
            raise ValueError("the unit directory lists no commune")
        weights = [
            _POPULATION.get(code, DEFAULT_WEIGHT)
            * (RURAL_HINTERLAND if units.by_commune[code].area == "rural" else 1.0)
            for code in self._codes
        ]
        self._cum = list(accumulate(weights))
        self._known = frozenset(self._codes)

    def draw(self, rng: Random) -> str:
        """One commune code."""
        if rng.random() < UNKNOWN_COMMUNE_SHARE:
            while True:
                code = str(rng.randrange(62_001, _HIGHEST_CODE))
                if code not in self._known:
                    return code
        return self._codes[bisect_right(self._cum, rng.random() * self._cum[-1])]
