"""Scoring: the versioned rule set and the explainable assessment."""

from __future__ import annotations

from triage.scoring.assess import Assessment, assess
from triage.scoring.rules import RuleSet, Span, default_rules_path, load_rules

__all__ = ["Assessment", "RuleSet", "Span", "assess", "default_rules_path", "load_rules"]
