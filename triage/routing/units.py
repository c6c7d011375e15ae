"""Commune → responsible unit (police circonscription or gendarmerie company).

The directory is a CSV data file; an unknown commune goes to the département's
default desk and is flagged so that someone fixes the mapping.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal, cast, get_args

from triage.errors import ConfigError

DEFAULT_ROW = "*"
_COLUMNS = ("insee", "commune", "unit_id", "unit_name", "force", "area")


Force = Literal["police", "gendarmerie", "departement"]
Area = Literal["urban", "rural"]
_FORCES = frozenset(get_args(Force))
_AREAS = frozenset(get_args(Area))


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit that receives queue records for its communes."""

    id: str
    name: str
    force: Force
    area: Area


@dataclass(frozen=True, slots=True)
class UnitDirectory:
    """Lookup from INSEE commune code to :class:`Unit`."""

    by_commune: dict[str, Unit]
    commune_names: dict[str, str]
    default: Unit

    def lookup(self, commune: str | None) -> tuple[Unit, bool]:
        """The unit for ``commune`` and whether it fell back to the default (flagged)."""
        if commune is not None:
            unit = self.by_commune.get(commune)
            if unit is not None:
                return unit, False
        return self.default, True

    @property
    def units(self) -> tuple[Unit, ...]:
        """Every distinct unit, the default included, sorted by id."""
        seen = {u.id: u for u in self.by_commune.values()}
        seen[self.default.id] = self.default
        return tuple(seen[k] for k in sorted(seen))


def default_units_path() -> Path:
    """The illustrative Pas-de-Calais directory shipped in the package."""
    return Path(str(resources.files("triage.routing") / "data" / "communes-62.csv"))


def load_units(path: str | Path | None = None) -> UnitDirectory:
    """Read a commune→unit CSV (``#`` lines are comments; ``*`` is the default row)."""
    path = Path(path) if path is not None else default_units_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read unit directory ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    rows = csv.DictReader(
        io.StringIO(
            "".join(
                line for line in text.splitlines(keepends=True) if not line.lstrip().startswith("#")
            )
        )
    )
    if tuple(rows.fieldnames or ()) != _COLUMNS:
        raise ConfigError(f"{path}: header must be {','.join(_COLUMNS)}")
    by_commune: dict[str, Unit] = {}
    names: dict[str, str] = {}
    default: Unit | None = None
    for number, row in enumerate(rows, start=2):
        force, area = row["force"], row["area"]
        if force not in _FORCES or area not in _AREAS:
            raise ConfigError(f"{path}: row {number}: force or area is not a known value")
        unit = Unit(
            id=row["unit_id"],
            name=row["unit_name"],
            force=cast(Force, force),
            area=cast(Area, area),
        )
        if row["insee"] == DEFAULT_ROW:
            default = unit
            continue
        if row["insee"] in by_commune:
            raise ConfigError(f"{path}: row {number}: commune {row['insee']} appears twice")
        by_commune[row["insee"]] = unit
        names[row["insee"]] = row["commune"]
    if default is None:
        raise ConfigError(f"{path}: no default row (insee '*')")
    return UnitDirectory(by_commune=by_commune, commune_names=names, default=default)
