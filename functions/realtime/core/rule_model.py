"""The base of the pydantic rule models (event-type rules, db-change sources): the reference for what a
rule may say, and the words for what is wrong with one (realtime.core.templates.explain)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RuleModel(BaseModel):
    """Rules are data: strict about unknown keys, immutable once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
