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


# -- JSON lines --------------------------------------------------------------------------------
# ``consent-service serve`` logs one JSON object a line (``CONSENT_LOG_FORMAT=json``, the default;
# ``text`` for gunicorn's plain lines): the time, level, logger and message of each record, the
# ``extra`` fields our code gives (never an identifier: a route template, a status, a duration),
# and, during a request, its ``request_id`` and the ``decision_id`` (or ``batch_id``) it made.
# The filters above apply unchanged: the same records are written, in another form.

LOG_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger"}
REQUEST_FIELDS = ("request_id", "decision_id", "batch_id")


class RequestContext(logging.Filter):
    """Stamps the serving request's ids (kept on ``flask.g`` by views/observability.py) on a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        from flask import g, has_app_context  # loaded with the app already; the module stays pure

        if has_app_context():
            for name in REQUEST_FIELDS:
                value = g.get(name)
                if value is not None and not hasattr(record, name):
                    setattr(record, name, value)
        return True


def json_formatter() -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(LOG_FIELDS, rename_fields=RENAMED)


def logging_config(log_format: str, level: str = "INFO") -> dict[str, object]:
    """gunicorn's ``logconfig_dict``: its own loggers and ours, to stdout/stderr, JSON or text."""
    if log_format not in {"json", "text"}:
        raise ValueError(f"CONSENT_LOG_FORMAT must be json or text, not {log_format!r}")
    formatter: dict[str, object] = (
        {"()": f"{__name__}.json_formatter"}
        if log_format == "json"
        else {"format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"}
    )
    context = {"()": f"{__name__}.RequestContext"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "lines": formatter,
            "access": formatter if log_format == "json" else {"format": "%(message)s"},
        },
        "filters": {"context": context},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "lines",
                "filters": ["context"],
                "stream": "ext://sys.stderr",
            },
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "access",
                "filters": ["context"],
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
    }
