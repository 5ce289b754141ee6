"""The access layer: who the caller is, what they may do, whose records they see.

Every resolver goes through a `Viewer`:

- `viewer.require(permission)` guards an operation (FORBIDDEN),
- `viewer.visible_owner_ids()` is the set of owners inside the caller's data
  scope (None means everyone),
- `viewer.pool_ids()` is the set of public pools the caller is a member of:
  customers sitting in them (no owner) are visible too,
- `visible_customers(viewer)` and friends scope a queryset, so a record
  outside the scope behaves as if it did not exist (NOT_FOUND, never
  FORBIDDEN, so ids cannot be probed).

The scope is the union over the caller's roles: SELF, SELF_AND_SUBORDINATES
(down the manager chain, any depth), DEPARTMENT, DEPARTMENT_TREE (any depth),
CUSTOM (the role's chosen departments) and ALL.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from tortoise.expressions import Q, Subquery

from meihua.models import Customer, CustomerTeamMember, DataScope, Role, TeamAccess, User
from meihua.resolvers.errors import Forbidden
from meihua.resolvers.field_rules import NO_RULES, FieldRules, load_field_rules
from meihua.resolvers.hierarchy import department_subtree, reporting_tree
from meihua.resolvers.once import Once
from meihua.resolvers.permissions import ALL_PERMISSIONS
from meihua.resolvers.pool_membership import member_pool_ids


class Viewer:
    """The signed-in user of one GraphQL operation, with their roles loaded."""

    def __init__(self, user: User, roles: list[Role], custom_departments: dict[int, set[int]]):
        self.user = user
        self.roles = roles
        self._custom_departments = custom_departments
        # Sibling fields ask for these at the same moment: each is loaded once.
        self._owner_ids = Once(self._compute_owner_ids)
        self._pool_ids = Once(lambda: member_pool_ids(user))
        self._field_rules = Once(lambda: load_field_rules([role.id for role in roles]))
        if user.is_super_admin:
            self.permissions = frozenset(ALL_PERMISSIONS)
        else:
            self.permissions = frozenset(p for role in roles for p in role.permissions)

    @classmethod
    async def load(cls, user: User) -> Viewer:
        roles = await Role.filter(users__id=user.id).order_by("id")
        custom_ids = [r.id for r in roles if r.data_scope == DataScope.CUSTOM]
        custom: dict[int, set[int]] = defaultdict(set)
        if custom_ids:
            rows = await Role.filter(id__in=custom_ids).values_list("id", "departments__id")
            for role_id, department_id in rows:
                if department_id is not None:
                    custom[role_id].add(department_id)
        return cls(user, list(roles), dict(custom))

    @property
    def id(self) -> int:
        return self.user.id

    @property
    def is_super_admin(self) -> bool:
        return self.user.is_super_admin

    @property
    def scopes(self) -> set[DataScope]:
        return {DataScope(role.data_scope) for role in self.roles}

    @property
    def sees_everything(self) -> bool:
        return self.is_super_admin or DataScope.ALL in self.scopes

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            raise Forbidden(f"You need the `{permission}` permission to do this.")

    async def visible_owner_ids(self) -> set[int] | None:
        """Users whose records the viewer sees through their data scope; None = all."""
        if self.sees_everything:
            return None
        return await self._owner_ids

    async def _compute_owner_ids(self) -> set[int]:
        owners = {self.user.id}
        scopes = self.scopes
        if DataScope.SELF_AND_SUBORDINATES in scopes:
            owners |= await reporting_tree(self.user.id)
        departments: set[int] = set()
        if DataScope.DEPARTMENT in scopes:
            departments.add(self.user.department_id)
        if DataScope.DEPARTMENT_TREE in scopes:
            departments |= await department_subtree(self.user.department_id)
        for role in self.roles:
            if role.data_scope == DataScope.CUSTOM:
                departments |= self._custom_departments.get(role.id, set())
        if departments:
            owners |= set(
                await User.filter(department_id__in=departments).values_list("id", flat=True)
            )
        return owners

    async def pool_ids(self) -> set[int]:
        """The public pools the viewer is a member of (sees into and claims from)."""
        return await self._pool_ids

    async def field_rules(self) -> FieldRules:
        """The viewer's field-level permissions."""
        if self.is_super_admin:
            return NO_RULES
        return await self._field_rules

    @property
    def loaded_field_rules(self) -> FieldRules | None:
        """The field rules when already loaded: lets a field skip awaiting them."""
        return NO_RULES if self.is_super_admin else self._field_rules.result()

    async def owner_filter(self, field: str = "owner_id") -> Q:
        """A Q limiting `field` to the owners in the viewer's scope."""
        owners = await self.visible_owner_ids()
        if owners is None:
            return Q()
        return Q(**{f"{field}__in": sorted(owners)})

    async def in_scope(self, owner_id: int | None) -> bool:
        owners = await self.visible_owner_ids()
        return owners is None or owner_id in owners

    def team_customers(self, access: TeamAccess | None = None) -> Subquery:
        """Ids of customers the viewer is on the team of (membership not expired)."""
        memberships = CustomerTeamMember.filter(user_id=self.user.id).filter(
            Q(expires_at=None) | Q(expires_at__gt=datetime.now(UTC))
        )
        if access is not None:
            memberships = memberships.filter(access=access)
        return Subquery(memberships.values("customer_id"))

    async def customer_filter(self) -> Q:
        """Customers the viewer sees: owner in scope, a member of the team, or
        sitting (without an owner) in one of the viewer's pools."""
        if self.sees_everything:
            return Q()
        visible = await self.owner_filter() | Q(id__in=self.team_customers())
        if pools := await self.pool_ids():
            visible |= Q(owner_id=None, pool_id__in=sorted(pools))
        return visible

    async def owned_record_filter(self) -> Q:
        """Records with an owner under a customer (opportunities, contracts)."""
        if self.sees_everything:
            return Q()
        return await self.owner_filter() | Q(customer_id__in=self.team_customers())

    async def customer_child_filter(self) -> Q:
        """Records without an owner of their own (contacts): visible with their customer."""
        if self.sees_everything:
            return Q()
        visible = Customer.filter(await self.customer_filter()).values("id")
        return Q(customer_id__in=Subquery(visible))

    async def may_write(self, owner_id: int | None, customer_id: int | None) -> bool:
        """Write access to a visible record: owner in scope, or WRITE on the team.

        A customer in a pool has no owner and no team: its pool's members read
        it and claim it before changing it (those who see everything may).
        """
        if await self.in_scope(owner_id):
            return True
        if customer_id is None:
            return False
        return await CustomerTeamMember.filter(
            Q(expires_at=None) | Q(expires_at__gt=datetime.now(UTC)),
            customer_id=customer_id,
            user_id=self.user.id,
            access=TeamAccess.WRITE,
        ).exists()

    async def require_write(self, owner_id: int | None, customer_id: int | None) -> None:
        if not await self.may_write(owner_id, customer_id):
            if owner_id is None and customer_id is not None:
                raise Forbidden("This customer is in the public pool; claim it to change it.")
            raise Forbidden("You can read this record but not change it (team READ access).")
