"""Passwords, tokens and login.

argon2-cffi hashes passwords (argon2id, with its own rehash check) and PyJWT
signs tokens; neither is worth writing by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from meihua.models import User
from meihua.resolvers.errors import BadUserInput, Unauthenticated

_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps both failures
# equally slow, so timing does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("meihua-dummy-password")

MIN_PASSWORD_LENGTH = 8
_ALGORITHM = "HS256"


def normalize_username(username: str) -> str:
    """Usernames are case-insensitive: `Alice` and `alice` are one account."""
    return username.strip().lower()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password_strength(password: str, field: str = "password") -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadUserInput(
            f"Password must be at least {MIN_PASSWORD_LENGTH} characters.", field=field
        )


@dataclass(frozen=True)
class TokenSigner:
    secret_key: str
    lifetime: timedelta

    def issue(self, user: User) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user.id),
            "ver": user.token_version,
            "iat": now,
            "exp": now + self.lifetime,
        }
        return jwt.encode(claims, self.secret_key, algorithm=_ALGORITHM)

    def read(self, token: str) -> tuple[int, int]:
        """The (user id, token version) a valid token names."""
        try:
            claims = jwt.decode(
                token,
                self.secret_key,
                algorithms=[_ALGORITHM],
                options={"require": ["sub", "exp", "ver"]},
            )
            return int(claims["sub"]), int(claims["ver"])
        except (jwt.PyJWTError, ValueError, TypeError):
            raise Unauthenticated("Invalid or expired token.") from None

    def expires_at(self, token: str) -> datetime:
        """When a token `read` accepted stops being valid (open sockets close then)."""
        claims = jwt.decode(
            token, self.secret_key, algorithms=[_ALGORITHM], options={"verify_exp": False}
        )
        return datetime.fromtimestamp(claims["exp"], UTC)


async def authenticate(token: str | None, signer: TokenSigner) -> User:
    """The active user a bearer token belongs to, or UNAUTHENTICATED."""
    if not token:
        raise Unauthenticated("Sign in first: send Authorization: Bearer <token>.")
    user_id, version = signer.read(token)
    user = await User.get_or_none(id=user_id, is_active=True, token_version=version)
    if user is None:
        raise Unauthenticated("Invalid or expired token.")
    return user


async def login(username: str, password: str, signer: TokenSigner) -> tuple[str, User]:
    user = await User.get_or_none(username=normalize_username(username))
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise Unauthenticated("Wrong username or password.")
    if not verify_password(user.password_hash, password) or not user.is_active:
        raise Unauthenticated("Wrong username or password.")
    user.last_login_at = datetime.now(UTC)
    update_fields = ["last_login_at"]
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        update_fields.append("password_hash")
    await user.save(update_fields=update_fields)
    return signer.issue(user), user
