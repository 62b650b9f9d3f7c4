"""People who sign in to the web pages: accounts, passwords, lockout, and the caller they act as.

A person belongs to one organization, as an API client does, and acts as a :class:`Caller` of
that organization with the scopes of their roles. The pages call the same use cases as the API
with that caller, so a page can do nothing the API would refuse to the same organization.

Passwords are hashed with Argon2id (argon2-cffi's defaults, rehashed on sign-in when those
change). After ``WEB_LOCKOUT_THRESHOLD`` wrong passwords in a row the account is locked for
``WEB_LOCKOUT_MINUTES``; a sign-in to a locked, disabled or unknown account fails exactly like a
wrong password, after the same amount of work, so the form cannot be used to find accounts.

Every change to an account is an audit entry in the same transaction: its creation and each
change (password, roles, unlock, disable, language), every sign-in, successful or not, a
lockout, and a sign-out (which ends all of the person's sessions). A failed sign-in names the
account only when there is one, and never records what was typed: an unknown "email" may be a
password typed into the wrong field, or someone else's address.

People may also sign in through the deployment's OpenID provider (``sign_in_federated``): their
account is keyed by the provider's (issuer, subject), never matched by email, and its
organization and roles follow the provider's claims at every sign-in (docs/security.md, "Single
sign-on"). Such an account has no password hash, so no password opens it.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from consent_service.container import Services
from consent_service.core import idp, pseudonyms
from consent_service.core.caller import Caller, Via
from consent_service.core.permissions import PERSON_SCOPES, Role, Scope
from consent_service.core.wire import AuditTag
from consent_service.errors import Conflict, NotFound, UnknownCode, ValidationFailed
from consent_service.services.organizations import check_oversight
from consent_service.storage import audit_rows as bound_rows
from consent_service.storage import organizations as organization_store
from consent_service.storage import users as store
from consent_service.storage.models import UserAccount


@cache
def _hasher(time_cost: int, memory_kib: int) -> tuple[PasswordHasher, str]:
    """The hasher for these costs, and a hash to verify against when there is no account to
    check, so that every failure costs the same time."""
    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)
    return hasher, hasher.hash("not a password anyone has")


def hasher(services: Services) -> tuple[PasswordHasher, str]:
    settings = services.settings
    return _hasher(int(settings["WEB_PASSWORD_TIME_COST"]), int(settings["WEB_PASSWORD_MEMORY_KIB"]))


MIN_PASSWORD = 12
MAX_PASSWORD = 1024
LANGUAGES = ("en", "fr")


class SignInRefused(Exception):
    """Wrong email or password, or a locked or disabled account: deliberately one error."""


class FederatedSignInRefused(idp.ClaimsRefused):
    """The OpenID provider vouched for the person, but they cannot sign in here: the claims'
    refusals and this service's own (disabled, unknown organization, email in use). ``reason``
    (the audit entry's) lets the page say why: the person can do nothing about a wrong password,
    but can ask their administrator for a role or an organization."""


@dataclass(frozen=True)
class SignedInUser:
    id: str
    email: str
    name: str
    organization: str
    organization_name: str
    scopes: frozenset[str]
    language: str
    stamp: str  # changes with the password and at sign-out, ending every earlier session

    @property
    def caller(self) -> Caller:
        return _person(self.id, self.organization, self.scopes)

    def has(self, scope: Scope) -> bool:
        return str(scope) in self.scopes


def _person(user_id: str, organization: str, scopes: frozenset[str]) -> Caller:
    """The caller a person acts as, on the pages and in the audit entries of what they do."""
    return Caller(organization=organization, client_id=f"user:{user_id}", scopes=scopes, via=Via.PERSON)


def _acting(user: UserAccount) -> Caller:
    return _person(user.id, user.organization_id, frozenset(user.roles.split()))


def scopes_for(services: Services, roles: list[str]) -> list[str]:
    """The scopes of the named roles (policies/roles.toml, or a person scope named as itself);
    ``ValidationFailed`` naming any role that is not one."""
    known: dict[str, Role] = services.policy.roles
    scopes: set[str] = set()
    unknown = []
    for role in roles:
        if role in known:
            scopes |= known[role].scopes
        elif role in PERSON_SCOPES:
            scopes.add(role)
        else:
            unknown.append(role)
    if unknown or not scopes:
        allowed = ", ".join([*known, *sorted(PERSON_SCOPES)])
        raise ValidationFailed(
            "A person needs at least one known role.",
            details={
                "roles": [f"unknown role: {r} (one of {allowed})" for r in unknown]
                or [f"give at least one of {allowed}"]
            },
        )
    return sorted(scopes)


def _check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(
            "The password is not usable.",
            details={"password": [f"between {MIN_PASSWORD} and {MAX_PASSWORD} characters"]},
        )


def _stamp(services: Services, user: UserAccount) -> str:
    key = pseudonyms.derive_key(services.secret, "web-session")
    message = f"{user.id}\n{user.session_epoch}\n{user.password_hash}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _signed_in(services: Services, session: Any, user: UserAccount) -> SignedInUser:
    org = organization_store.get_organization(session, user.organization_id)
    return SignedInUser(
        id=user.id,
        email=user.email,
        name=user.name,
        organization=user.organization_id,
        organization_name=org.name if org else user.organization_id,
        scopes=frozenset(user.roles.split()),
        language=user.language,
        stamp=_stamp(services, user),
    )


@dataclass(frozen=True)
class Person:
    """A person's account as the operator's commands show it (never the password or its hash)."""

    id: str
    email: str
    name: str
    organization: str
    roles: list[str]  # the scopes their roles gave them, as stored
    language: str
    created_at: datetime
    disabled_at: datetime | None
    locked_until: datetime | None

    @classmethod
    def of(cls, user: UserAccount) -> Person:
        return cls(
            id=user.id,
            email=user.email,
            name=user.name,
            organization=user.organization_id,
            roles=user.roles.split(),
            language=user.language,
            created_at=user.created_at,
            disabled_at=user.disabled_at,
            locked_until=user.locked_until,
        )


def create_user(
    services: Services,
    *,
    caller: Caller | None,
    email: str,
    name: str,
    organization: str,
    roles: list[str],
    password: str,
    language: str,
    now: datetime,
) -> Person:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254 or not email.isprintable() or " " in email:
        raise ValidationFailed(
            "The email address is not usable.", details={"email": ["not an email address"]}
        )
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("The name is not usable.", details={"name": ["1 to 200 characters"]})
    if language not in LANGUAGES:
        raise ValidationFailed("Unknown language.", details={"language": [f"one of {', '.join(LANGUAGES)}"]})
    scopes = scopes_for(services, roles)
    _check_password(password)
    with services.writing(caller) as session:
        org = organization_store.get_organization(session, organization)
        if org is None:
            raise UnknownCode(
                "The organization does not exist.",
                details={"organization": [f"unknown organization: {organization}"]},
            )
        check_oversight(org, scopes, field="roles")
        if store.by_email(session, email) is not None:
            raise Conflict(f"A person with the email {email} already exists.")
        user = _add_account(
            services,
            session,
            UserAccount(
                id=str(uuid.uuid4()),
                email=email,
                name=name.strip(),
                organization_id=organization,
                password_hash=hasher(services)[0].hash(password),
                roles=" ".join(scopes),
                language=language,
                created_at=now,
            ),
            caller=caller,
        )
        session.commit()
        return Person.of(user)


def _add_account(
    services: Services, session: Any, user: UserAccount, *, caller: Caller | None, **extra: str
) -> UserAccount:
    """Store a new account with its ``user:created`` entry (organization and scopes; ``extra``
    says how it was made when not by the operator)."""
    store.add(session, user)
    services.append_audit(
        session,
        at=user.created_at,
        tag=AuditTag.USER_CREATED,
        caller=caller,
        object_id=user.id,
        payload={"organization": user.organization_id, "roles": user.roles.split(), **extra},
    )
    return user


def list_users(services: Services, *, organization: str | None = None) -> list[Person]:
    with services.reading(None) as session:
        return [Person.of(user) for user in store.listed(session, organization)]


def sign_in(services: Services, *, email: str, password: str, now: datetime) -> SignedInUser:
    """The person, if the password is right and the account usable; else ``SignInRefused``.

    Each wrong password for a usable account counts towards its lockout; attempts while it is
    locked are refused without counting, so guessing during a lock does not extend it (the
    per-address rate limit on the form slows guessing further). Every attempt is an audit
    entry (``user:signed-in`` or ``user:sign-in-failed``, and ``user:locked`` when it locks).
    """
    threshold = int(services.settings["WEB_LOCKOUT_THRESHOLD"])
    lock_for = timedelta(minutes=int(services.settings["WEB_LOCKOUT_MINUTES"]))
    password_hasher, dummy_hash = hasher(services)
    with services.writing(None) as session:
        if not services.settings["LOCAL_PASSWORDS"]:
            # Passwords are switched off: nothing is checked, the attempt is still recorded.
            _failed(services, session, None, now=now, reason="passwords-off")
            session.commit()
            raise SignInRefused
        user = store.by_email(session, email.strip()) if len(email) <= 254 else None
        usable = (
            user is not None
            and user.disabled_at is None
            and (user.locked_until is None or user.locked_until <= now)
        )
        try:
            password_hasher.verify(
                user.password_hash if usable and user is not None else dummy_hash, password
            )
            right = usable
        except (VerificationError, InvalidHashError):
            right = False
        if user is None or not right:
            _refused(services, session, user, now=now, threshold=threshold, lock_for=lock_for)
            session.commit()
            raise SignInRefused
        store.clear_failures(session, user.id)
        if password_hasher.check_needs_rehash(user.password_hash):
            user.password_hash = password_hasher.hash(password)
        session.flush()
        services.append_audit(
            session, at=now, tag=AuditTag.USER_SIGNED_IN, caller=_acting(user), object_id=user.id, payload={}
        )
        session.commit()
        session.refresh(user)
        return _signed_in(services, session, user)


def _refused(
    services: Services,
    session: Any,
    user: UserAccount | None,
    *,
    now: datetime,
    threshold: int,
    lock_for: timedelta,
) -> None:
    """Record a refused sign-in: who tried is not known, so the entry has no actor; the account
    is named (by id) only if there is one, and the reason is for the reader of the log only (the
    form answers every refusal alike)."""

    def failed(object_id: str | None, **payload: Any) -> None:
        _failed(services, session, object_id, now=now, **payload)

    if user is None:
        failed(None, reason="unknown-account")
    elif user.disabled_at is not None:
        failed(user.id, reason="disabled")
    elif user.locked_until is not None and user.locked_until > now:
        failed(user.id, reason="locked")
    else:
        failures = store.count_failure(session, user.id)
        failed(user.id, reason="wrong-password", failures=failures)
        if failures >= threshold:
            store.lock(session, user.id, until=now + lock_for)
            services.append_audit(
                session,
                at=now,
                tag=AuditTag.USER_LOCKED,
                caller=None,
                object_id=user.id,
                payload={"until": (now + lock_for).isoformat(), "failures": failures},
            )


def _failed(
    services: Services, session: Any, object_id: str | None, *, now: datetime, **payload: Any
) -> None:
    services.append_audit(
        session,
        at=now,
        tag=AuditTag.USER_SIGN_IN_FAILED,
        caller=None,
        object_id=object_id,
        payload=payload,
    )


def sign_in_federated(
    services: Services, *, issuer: str, subject: str, claims: dict[str, Any], now: datetime
) -> SignedInUser:
    """The person the OpenID provider signed in (its ID token already verified by the caller),
    or ``FederatedSignInRefused``.

    The account is the one linked to (``issuer``, ``subject``), made at the first sign-in and
    never looked up by email: whoever controls an account at the provider may set any email on
    it, so matching by email would hand them someone else's account here (docs/security.md). A
    person whose email an account here already has is refused until the operator links the two
    (``consent-service users link-provider``). The organization and roles are taken from the
    claims at every sign-in (a change is a ``user:changed`` entry); an organization unknown here,
    no known role, or an account disabled here is refused however the provider answered. The
    password lockout is not consulted: it counts password guesses, not these sign-ins.
    """
    settings = services.settings
    known = [*services.policy.roles, *sorted(PERSON_SCOPES)]
    with services.writing(None) as session:
        user = store.by_idp(session, issuer, subject)

        def refuse(reason: str) -> NoReturn:
            _failed(services, session, user.id if user else None, now=now, reason=reason, via="oidc")
            session.commit()
            raise FederatedSignInRefused(reason)

        if not 0 < len(subject) <= 255 or len(issuer) > 255:
            refuse("unusable-subject")  # more than the columns hold (the specification allows 255)
        if user is not None and user.disabled_at is not None:
            refuse("disabled")
        try:
            person = idp.identity(
                claims,
                organization_claim=str(settings["OIDC_ORGANIZATION_CLAIM"]),
                roles_claim=str(settings["OIDC_ROLES_CLAIM"]),
                known_roles=known,
            )
        except idp.ClaimsRefused as exc:
            refuse(exc.reason)
        org = organization_store.get_organization(session, person.organization)
        if org is None:
            refuse("unknown-organization")
        scopes = scopes_for(services, list(person.roles))
        try:
            check_oversight(org, scopes, field="roles")
        except ValidationFailed:
            refuse("role-not-for-organization")
        roles = " ".join(scopes)
        if user is None:
            if store.by_email(session, person.email) is not None:
                refuse("email-in-use")
            account = UserAccount(
                id=str(uuid.uuid4()),
                email=person.email,
                name=person.name,
                organization_id=org.id,
                password_hash="",  # no password is ever right (sign_in: InvalidHashError)
                roles=roles,
                language="en",
                created_at=now,
                idp_issuer=issuer,
                idp_subject=subject,
            )
            user = _add_account(services, session, account, caller=None, via="oidc", issuer=issuer)
        else:
            _apply(
                services,
                session,
                user,
                now=now,
                change="provider-claims",
                organization_id=org.id,
                roles=roles,
            )
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.USER_SIGNED_IN,
            caller=_acting(user),
            object_id=user.id,
            payload={"via": "oidc"},
        )
        session.commit()
        session.refresh(user)
        return _signed_in(services, session, user)


def link_provider(services: Services, *, email: str, issuer: str, subject: str, now: datetime) -> Person:
    """Link the account with ``email`` to the provider's (``issuer``, ``subject``): the operator's
    deliberate act, after checking that both are the same person (never done by matching
    emails). 409 if that provider account is already another person's."""
    if not issuer.strip() or not subject.strip() or len(issuer) > 255 or len(subject) > 255:
        raise ValidationFailed(
            "The issuer and subject are not usable.", details={"subject": ["1 to 255 characters"]}
        )
    with services.writing(None) as session:
        other = store.by_idp(session, issuer, subject)
        if other is not None and other.email != email.strip().lower():
            raise Conflict(f"That provider account is already linked to {other.email}.")
    return _change(
        services, email=email, now=now, change="provider-linked", idp_issuer=issuer, idp_subject=subject
    )


def current_user(services: Services, *, user_id: str, stamp: str) -> SignedInUser | None:
    """The signed-in person of a session, or None if the account is gone, disabled, or its
    password changed since the session began."""
    with services.reading(None) as session:
        user = store.get(session, user_id)
        if user is None or user.disabled_at is not None:
            return None
        signed_in = _signed_in(services, session, user)
        return signed_in if hmac.compare_digest(signed_in.stamp, stamp) else None


def sign_out(services: Services, *, user_id: str, now: datetime) -> None:
    """End every session of this person, on every device (the stamp of each one changes)."""
    with services.writing(None) as session:
        user = store.get(session, user_id)
        if user is None:
            return
        store.bump_session_epoch(session, user_id)
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.USER_SIGNED_OUT,
            caller=_acting(user),
            object_id=user_id,
            payload={"sessions": "all"},
        )
        session.commit()


def _change(services: Services, *, email: str, now: datetime, change: str, **values: Any) -> Person:
    """Set ``values`` on the person with ``email``: an operator's command, so the entry has no
    actor. A change of roles records the roles before and after (never a password or its hash).

    Only a change is recorded: a command that changes nothing (unlocking an account that is not
    locked, giving the roles it has) writes nothing. A disabled account keeps the time it was
    first disabled.
    """
    with services.writing(None) as session:
        user = store.by_email(session, email.strip())
        if user is None:
            raise NotFound(f"No person with the email {email}.")
        if user.disabled_at is not None:
            values.pop("disabled_at", None)
        if _apply(services, session, user, now=now, change=change, **values):
            session.commit()
        return Person.of(user)


def _apply(
    services: Services, session: Any, user: UserAccount, *, now: datetime, change: str, **values: Any
) -> bool:
    """Set the ``values`` that differ, with their ``user:changed`` entry (no actor: the operator or
    the provider's claims); whether anything changed. The entry names the organization, roles and
    provider before and after, never a password or its hash."""
    values = {name: value for name, value in values.items() if getattr(user, name) != value}
    if not values:
        return False
    payload: dict[str, Any] = {"change": change}
    if "organization_id" in values:
        payload.update(previous_organization=user.organization_id, organization=values["organization_id"])
    if "roles" in values:
        payload.update(previous_roles=user.roles.split(), roles=values["roles"].split())
    if "idp_issuer" in values:
        payload.update(issuer=values["idp_issuer"])
    bound_rows.changing(session, UserAccount, user.id)
    for name, value in values.items():
        setattr(user, name, value)
    session.flush()
    services.append_audit(
        session, at=now, tag=AuditTag.USER_CHANGED, caller=None, object_id=user.id, payload=payload
    )
    return True


def set_password(services: Services, *, email: str, password: str, now: datetime) -> Person:
    """A new password; it unlocks the account and ends every session signed in with the old one."""
    _check_password(password)
    return _change(
        services,
        email=email,
        now=now,
        change="password",
        password_hash=hasher(services)[0].hash(password),
        failed_sign_ins=0,
        locked_until=None,
    )


def unlock(services: Services, *, email: str, now: datetime) -> Person:
    return _change(services, email=email, now=now, change="unlocked", failed_sign_ins=0, locked_until=None)


def disable(services: Services, *, email: str, now: datetime) -> Person:
    return _change(services, email=email, now=now, change="disabled", disabled_at=now)


def set_roles(services: Services, *, email: str, roles: list[str], now: datetime) -> Person:
    """The person's roles from their next page on (the scopes are read at every request)."""
    roles_now = " ".join(scopes_for(services, roles))
    return _change(services, email=email, now=now, change="roles", roles=roles_now)


def set_language(services: Services, *, user_id: str, language: str, now: datetime) -> None:
    """The language the pages speak to this person from the next page on: the person's own
    setting, so the entry's actor is the person. Choosing the language they have changes nothing
    and records nothing."""
    if language not in LANGUAGES:
        raise ValidationFailed("Unknown language.", details={"language": [f"one of {', '.join(LANGUAGES)}"]})
    with services.writing(None) as session:
        user = store.get(session, user_id)
        if user is None:
            raise NotFound("No such person.")
        if user.language == language:
            return
        payload = {"change": "language", "previous_language": user.language, "language": language}
        bound_rows.changing(session, UserAccount, user.id)
        user.language = language
        session.flush()
        services.append_audit(
            session,
            at=now,
            tag=AuditTag.USER_CHANGED,
            caller=_acting(user),
            object_id=user.id,
            payload=payload,
        )
        session.commit()
