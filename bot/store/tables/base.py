"""What every table shares: the base class and the column helpers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from bot.store.columns import UTCDateTime


class Table(SQLModel):
    """A table's pydantic schema is built when first used, not at import:
    rows are made by the ORM and by constructors, which SQLModel does not
    validate, so most commands never need it
    (https://docs.pydantic.dev/latest/api/config/#pydantic.config.ConfigDict.defer_build)."""

    model_config = {"defer_build": True}


def utc_field(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def json_field() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
