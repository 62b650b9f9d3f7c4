"""Extension objects, made fresh for each app (tests build many apps in one process)."""

from __future__ import annotations

from flask import g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_smorest import Api
from webargs.flaskparser import FlaskParser


class ContractParser(FlaskParser):
    """webargs answers 422 by default; the contract says 400."""

    DEFAULT_VALIDATION_STATUS = 400


def rate_limit_key() -> str:
    """Per client once authenticated, else per address."""
    caller = g.get("caller")
    return f"client:{caller.client_id}" if caller is not None else f"addr:{get_remote_address()}"


def make_api() -> Api:
    api = Api()
    api.ARGUMENTS_PARSER = ContractParser()  # type: ignore[attr-defined]
    return api


def make_limiter() -> Limiter:
    return Limiter(key_func=rate_limit_key, headers_enabled=True)
