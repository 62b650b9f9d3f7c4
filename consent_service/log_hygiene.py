"""Keep personal data and credentials out of the logs, whatever level an operator turns on.

Our own code logs no identifiers, notes, secrets or tokens. Two libraries would at DEBUG:

* Authlib logs every access token it issues (``Issue token {...} to client``): the token is
  replaced by a placeholder, the client kept.
* SQLAlchemy logs every row it fetches (consent evidence, pseudonyms): those records are
  dropped. Statement parameters are not logged either (``hide_parameters`` on the engine,
  storage/db.py), which also keeps them out of error messages.

:func:`install` is idempotent (many apps are built in one test process).
"""

from __future__ import annotations

import logging

AUTHLIB_ISSUER_LOGGER = "authlib.oauth2.rfc6749.grants.client_credentials"
SQLALCHEMY_ENGINE_LOGGERS = ("sqlalchemy.engine.Engine", "sqlalchemy.engine.base.Engine")
WITHHELD = "[withheld]"


class _WithholdIssuedTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Issue token") and record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            client = args[1] if len(args) > 1 else ""
            record.args = (WITHHELD, getattr(client, "client_id", WITHHELD))
        return True


class _NoRowDumps(logging.Filter):
    """SQLAlchemy logs result rows at DEBUG, and only rows."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_FILTERS: tuple[tuple[str, type[logging.Filter]], ...] = (
    (AUTHLIB_ISSUER_LOGGER, _WithholdIssuedTokens),
    *((name, _NoRowDumps) for name in SQLALCHEMY_ENGINE_LOGGERS),
)


def install() -> None:
    for name, kind in _FILTERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, kind) for existing in logger.filters):
            logger.addFilter(kind())
