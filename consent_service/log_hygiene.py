"""Keep personal data and credentials out of the logs, whatever level an operator turns on.

Our own code logs no identifiers, notes, secrets or tokens. The access log (gunicorn, set up by
``consent-service serve``) has no query strings: :data:`ACCESS_LOG_FORMAT`. Two libraries would
at DEBUG:

* Authlib logs every access token it issues (``Issue token {...} to client``): the token is
  replaced by a placeholder, the client kept.
* SQLAlchemy logs every row it fetches (consent evidence, pseudonyms): those records are
  dropped. Statement parameters are not logged either (``hide_parameters`` on the engine,
  storage/db.py), which also keeps them out of error messages.

:func:`install` is idempotent (many apps are built in one test process).
"""

from __future__ import annotations

import logging

# gunicorn's access log line, without the query string (gunicorn's default "%(r)s" is the
# whole request line) and without the Referer (a page's address may carry one): query strings
# can hold free text (``?reason=`` of DELETE .../rules/{id}) or credentials someone put in a
# URL, and an access log is kept and shipped far more widely than the database.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(L)s'

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
