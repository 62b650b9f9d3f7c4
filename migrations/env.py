"""Alembic environment: the target is SQLModel's metadata; the URL comes from the service's config.

On PostgreSQL the upgrade holds an advisory lock, so several instances started together
migrate once and the others wait, then find nothing to do.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from consent_service import config as service_config
from consent_service.storage import models
from consent_service.storage.db import make_engine
from consent_service.storage.urls import database_url

MIGRATION_LOCK_ID = 727_001  # any constant shared by every instance of the service

target_metadata = models.metadata


def _url() -> str:
    given = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
    return given or database_url(service_config.load())


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    settings = service_config.load()
    schema = context.config.attributes.get("schema") or settings["DB_SCHEMA"]
    engine = make_engine(_url(), schema=schema)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    is_pg = connection.dialect.name == "postgresql"
    if is_pg:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK_ID})
        connection.commit()
    try:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True, compare_type=True
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        if is_pg:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK_ID})
            connection.commit()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
