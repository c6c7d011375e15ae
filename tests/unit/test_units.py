"""The commune → unit directory: lookups, the flagged default, and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.errors import ConfigError
from triage.routing.units import UnitDirectory, default_units_path, load_units
from triage.testing import RURAL_COMMUNE, UNKNOWN_COMMUNE, URBAN_COMMUNE

HEADER = "insee,commune,unit_id,unit_name,force,area\n"
DEFAULT = "*,(inconnue),DEP-X,Desk,departement,rural\n"


def units_file(tmp_path: Path, text: str | bytes) -> Path:
    """A unit directory file with ``text`` as its content."""
    path = tmp_path / "units.csv"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


class TestUnitDirectory:
    def test_urban_commune(self, units: UnitDirectory) -> None:
        """Arras goes to the Arras police circonscription, urban, not flagged."""
        unit, flagged = units.lookup(URBAN_COMMUNE)

        assert (unit.id, unit.force, unit.area, flagged) == ("PN-ARRAS", "police", "urban", False)

    def test_rural_commune(self, units: UnitDirectory) -> None:
        """Bapaume goes to the Arras gendarmerie company, rural."""
        unit, flagged = units.lookup(RURAL_COMMUNE)

        assert (unit.id, unit.force, unit.area, flagged) == (
            "GN-CIE-ARRAS",
            "gendarmerie",
            "rural",
            False,
        )

    def test_unknown_commune_goes_to_default_and_is_flagged(self, units: UnitDirectory) -> None:
        """An unknown commune goes to the département's default desk, flagged."""
        unit, flagged = units.lookup(UNKNOWN_COMMUNE)

        assert (unit, flagged) == (units.default, True)

    def test_no_commune_goes_to_default_and_is_flagged(self, units: UnitDirectory) -> None:
        """An event without a commune (an alarm, say) goes to the default desk, flagged."""
        assert units.lookup(None) == (units.default, True)

    def test_units_are_distinct_sorted_and_include_default(self, units: UnitDirectory) -> None:
        """``units`` lists each unit once, sorted by id, the default included."""
        ids = [u.id for u in units.units]

        assert ids == sorted(set(ids))
        assert units.default.id in ids

    def test_commune_names(self, units: UnitDirectory) -> None:
        """Commune names are kept (public geography) for display."""
        assert units.commune_names[URBAN_COMMUNE] == "Arras"


class TestLoadUnits:
    def test_packaged_file_loads(self) -> None:
        """The packaged directory loads, by default or by path, with a default desk."""
        assert load_units() == load_units(default_units_path())
        assert load_units().default.force == "departement"

    def test_comments_and_minimal_file(self, tmp_path: Path) -> None:
        """Lines starting with # are ignored; a default row alone is a valid directory."""
        path = units_file(tmp_path, "# a comment\n" + HEADER + "  # indented comment\n" + DEFAULT)

        directory = load_units(path)

        assert directory.by_commune == {}
        assert directory.default.id == "DEP-X"

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming the path."""
        with pytest.raises(ConfigError, match=r"absent\.csv.*cannot read"):
            load_units(tmp_path / "absent.csv")

    def test_bad_header(self, tmp_path: Path) -> None:
        """A file whose header is not the expected columns is refused."""
        path = units_file(tmp_path, "code,name\n62041,Arras\n")

        with pytest.raises(ConfigError, match="header"):
            load_units(path)

    def test_unknown_force(self, tmp_path: Path) -> None:
        """A row whose force is not police, gendarmerie or departement is refused by row number."""
        path = units_file(tmp_path, HEADER + "62041,Arras,PN,P,army,urban\n" + DEFAULT)

        with pytest.raises(ConfigError, match="row 2"):
            load_units(path)

    def test_unknown_area(self, tmp_path: Path) -> None:
        """A row whose area is neither urban nor rural is refused."""
        path = units_file(tmp_path, HEADER + "62041,Arras,PN,P,police,suburban\n" + DEFAULT)

        with pytest.raises(ConfigError, match="force or area"):
            load_units(path)

    def test_short_row(self, tmp_path: Path) -> None:
        """A row with missing columns is refused, not a crash."""
        path = units_file(tmp_path, HEADER + "62041,Arras\n" + DEFAULT)

        with pytest.raises(ConfigError, match="row 2"):
            load_units(path)

    def test_duplicate_commune(self, tmp_path: Path) -> None:
        """A commune listed twice is refused, naming it."""
        row = "62041,Arras,PN,P,police,urban\n"
        path = units_file(tmp_path, HEADER + row + row + DEFAULT)

        with pytest.raises(ConfigError, match="62041 appears twice"):
            load_units(path)

    def test_no_default_row(self, tmp_path: Path) -> None:
        """A directory without a default row is refused: unknown communes need a desk."""
        path = units_file(tmp_path, HEADER + "62041,Arras,PN,P,police,urban\n")

        with pytest.raises(ConfigError, match="no default row"):
            load_units(path)

    def test_file_not_utf8(self, tmp_path: Path) -> None:
        """A directory file that is not UTF-8 is a ConfigError, not a UnicodeDecodeError."""
        path = units_file(
            tmp_path, (HEADER + "62570,Méricourt,PN,P,police,urban\n" + DEFAULT).encode("latin-1")
        )

        with pytest.raises(ConfigError):
            load_units(path)
