"""Getting a fresh installation to a first usable account."""

from __future__ import annotations

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from meihua.models import User
from meihua.resolvers.auth import (
    check_password_strength,
    hash_password,
    normalize_username,
    verify_password,
)
from meihua.resolvers.errors import BadUserInput
from meihua.resolvers.org import USERNAME_PATTERN, clean_name, top_department


async def ensure_super_admin(username: str, password: str, name: str | None = None) -> str:
    """Make `username` an active super admin with `password`; repeating it changes nothing."""
    username = normalize_username(username)
    if not USERNAME_PATTERN.match(username):
        raise BadUserInput("Usernames are 3–64 letters, digits or . _ @ -.", field="username")
    check_password_strength(password)
    async with in_transaction():
        user = await User.get_or_none(username=username)
        if user is None:
            await User.create(
                username=username,
                name=clean_name(name or username, "name"),
                password_hash=hash_password(password),
                department=await top_department(),
                is_super_admin=True,
            )
            return f"Created super admin {username!r}."
        changes: dict = {}
        if not user.is_super_admin:
            changes["is_super_admin"] = True
        if not user.is_active:
            changes["is_active"] = True
        if not verify_password(user.password_hash, password):
            changes["password_hash"] = hash_password(password)
            changes["token_version"] = F("token_version") + 1
        if not changes:
            return f"Super admin {username!r} already exists; nothing to do."
        await User.filter(id=user.id).update(version=F("version") + 1, **changes)
        return f"Updated {username!r}: now an active super admin with the given password."
