"""The SQLite connection settings an operator relies on: durable commits (WAL, synchronous FULL),
foreign keys enforced, and the memory map of ``CONSENT_SQLITE_MMAP_MB`` (what keeps a large
store's decisions as fast as a small one's: docs/performance.md)."""

from __future__ import annotations

from sqlalchemy import text

from consent_service import create_app
from consent_service.container import EXTENSION
from consent_service.storage.db import make_engine


def pragmas(engine) -> dict[str, int | str]:
    with engine.connect() as conn:
        return {
            name: conn.execute(text(f"PRAGMA {name}")).scalar_one()
            for name in ("journal_mode", "synchronous", "foreign_keys", "mmap_size")
        }


def test_every_connection_is_durable_and_maps_the_file(tmp_path):
    found = pragmas(make_engine(f"sqlite:///{tmp_path / 'x.db'}"))
    assert found == {
        "journal_mode": "wal",
        "synchronous": 2,
        "foreign_keys": 1,
        "mmap_size": 1024 * 1024 * 1024,
    }


def test_the_memory_map_follows_the_setting_and_zero_turns_it_off(tmp_path):
    for megabytes in (0, 64):
        app = create_app(
            {"DATABASE_URL": f"sqlite:///{tmp_path / f'{megabytes}.db'}", "SQLITE_MMAP_MB": megabytes}
        )
        engine = app.extensions[EXTENSION].sessions.kw["bind"]
        assert pragmas(engine)["mmap_size"] == megabytes * 1024 * 1024
        engine.dispose()
