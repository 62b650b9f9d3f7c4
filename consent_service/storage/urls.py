"""Where the database is: ``CONSENT_DATABASE_URL`` or a SQLite file in the instance folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def instance_path() -> Path:
    """The instance folder: ``CONSENT_INSTANCE_PATH`` or ``./instance``."""
    return Path(os.environ.get("CONSENT_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def database_url(settings: dict[str, Any], instance: Path | None = None) -> str:
    url = settings.get("DATABASE_URL") or ""
    if url:
        return str(url)
    folder = instance or instance_path()
    return f"sqlite:///{folder / 'consent.db'}"
