"""Settings shared by every front end, read from the environment (``LIUBAI_*``) with pydantic."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_store_url"]


def default_store_url() -> str:
    """An SQLite file in the user's data directory: the zero-set-up embedded store."""
    return f"sqlite:///{Path(user_data_dir('liubai')) / 'lineage.db'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIUBAI_", extra="ignore")

    store: str = Field(
        default_factory=default_store_url, description="store URL: sqlite:///path or neo4j://host:7687"
    )
    neo4j_password: str | None = None
    neo4j_database: str = "neo4j"
