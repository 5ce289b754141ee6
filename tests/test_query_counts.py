"""The customer list screen costs a fixed number of SQL statements, whatever its size."""

from meihua.models import Contact, Customer, Opportunity, OpportunityStage
from meihua.models.contacts import DecisionRole
from meihua.resolvers.customers import normalize_name

CUSTOMER_LIST = """
query($first: Int!) {
  customers(first: $first) {
    totalCount
    edges { node {
      name owner { username department { name } }
      contacts { name decisionRole }
      decisionCircle { coverage missingRoles }
      opportunities { name amount weightedAmount stage { name winRate } owner { username } }
    } }
  }
}
"""


async def _customers(owner, n: int, prefix: str) -> None:
    stages = await OpportunityStage.all().order_by("order")
    roles = list(DecisionRole)
    for i in range(n):
        name = f"{prefix} {i}"
        customer = await Customer.create(
            name=name, name_key=normalize_name(name), owner=owner, created_by=owner
        )
        for j in range(1 + i % 3):
            await Contact.create(
                customer=customer,
                name=f"{name} contact {j}",
                decision_role=roles[(i + j) % len(roles)],
                created_by=owner,
            )
        await Opportunity.create(
            customer=customer,
            name=f"{name} deal",
            amount="1000.00",
            stage=stages[i % len(stages)],
            owner=owner,
            created_by=owner,
        )


async def test_customer_list_with_nested_relations_costs_the_same_for_10_or_100(
    gql, org, statements
):
    rep = await org.user("rep", roles=[await org.default_role("Sales Rep")])
    await _customers(rep, 10, "Small")
    statements.count = 0
    small = await gql.ok(CUSTOMER_LIST, {"first": 100}, as_user=rep)
    ten = statements.count

    await _customers(rep, 90, "Large")
    statements.count = 0
    large = await gql.ok(CUSTOMER_LIST, {"first": 100}, as_user=rep)
    hundred = statements.count

    assert small["customers"]["totalCount"] == 10
    assert len(large["customers"]["edges"]) == 100
    assert all(len(e["node"]["opportunities"]) == 1 for e in large["customers"]["edges"])
    assert all(e["node"]["owner"]["username"] == "rep" for e in large["customers"]["edges"])
    assert ten == hundred, (ten, hundred)
