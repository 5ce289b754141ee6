"""Likely duplicates (疑似重复客户): customers that are probably the same company.

Normalized names and phones are unique already (first in owns), so what is
left to find are near misses:

- SAME_NAME: the same name once company suffixes (有限公司, Co., Ltd., Inc. …),
  punctuation and spaces are gone;
- NAME_CONTAINED: one such name inside the other (华为 and 华为技术);
- SIMILAR_NAME: names sharing most of their character pairs (the Dice
  coefficient of their bigrams, which works for Chinese as for Latin names);
- SAME_PHONE: the same local number (last 8 digits) on the customers or their
  contacts, however it was written (+86 10 …, 010-…);
- SAME_EMAIL: a contact email shared across customers.

Phones and emails the caller's field permissions hide are left out of the
comparison: a shared number would otherwise confirm what the mask hides.

The search runs over the caller's visible customers, the most recently updated
`scan_max` of them. Names are indexed by their bigrams and compared only with
names sharing one of their rarest bigrams (prefix filtering: two names as
similar as SIMILAR must share one of the rarer half of each one's bigrams,
and a name inside another shares its rarest). Bigrams in more than
COMMON_BIGRAM names find nothing, so the work grows with the window, not with
its square.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

from meihua.models import Contact, Customer, RecordType
from meihua.resolvers.access import Viewer
from meihua.resolvers.customers import get_visible_customer, normalize_phone
from meihua.resolvers.field_rules import FieldRules

# Trailing words that say what kind of company it is, not which one.
_CJK_SUFFIXES = (
    "股份有限公司", "有限责任公司", "集团有限公司", "有限公司", "股份公司", "集团", "公司",
    "分公司", "株式会社",
)  # fmt: skip
_LATIN_SUFFIXES = {
    "co", "company", "corp", "corporation", "inc", "incorporated", "llc", "ltd", "limited",
    "plc", "gmbh", "ag", "sa", "group", "holdings",
}  # fmt: skip
_WORDS = re.compile(r"[^\W_]+")
# A bigram in more names than this says little (科技, 贸易): it finds no candidates.
COMMON_BIGRAM = 200
SIMILAR = 0.7  # the least Dice coefficient of SIMILAR_NAME
LOCAL_DIGITS = 8
CHUNK = 1000  # ids per IN list


class DuplicateReason(StrEnum):
    SAME_NAME = "SAME_NAME"
    NAME_CONTAINED = "NAME_CONTAINED"
    SIMILAR_NAME = "SIMILAR_NAME"
    SAME_PHONE = "SAME_PHONE"
    SAME_EMAIL = "SAME_EMAIL"


_SCORES = {
    DuplicateReason.SAME_NAME: 0.95,
    DuplicateReason.SAME_PHONE: 0.9,
    DuplicateReason.SAME_EMAIL: 0.9,
}


def core_name(name_key: str) -> str:
    """A normalized name without company suffixes, punctuation and spaces."""
    words = _WORDS.findall(name_key)
    while len(words) > 1 and words[-1] in _LATIN_SUFFIXES:
        words.pop()
    core = "".join(words)
    stripped = True
    while stripped:
        stripped = False
        for suffix in _CJK_SUFFIXES:
            if core.endswith(suffix) and len(core) > len(suffix):
                core, stripped = core[: -len(suffix)], True
    return core


def bigrams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)} or {text}


@dataclass
class DuplicateGroup:
    customer_ids: list[int]
    score: float
    reasons: list[DuplicateReason] = field(default_factory=list)


class _Groups:
    """Groups by their set of customers; a set found twice keeps every reason, the best score."""

    def __init__(self) -> None:
        self.by_members: dict[frozenset[int], DuplicateGroup] = {}

    def add(self, ids: set[int], reason: DuplicateReason, score: float) -> None:
        if len(ids) < 2:
            return
        key = frozenset(ids)
        group = self.by_members.setdefault(key, DuplicateGroup(sorted(ids), score))
        group.score = max(group.score, round(score, 3))
        if reason not in group.reasons:
            group.reasons.append(reason)

    def best(self, limit: int, around: int | None) -> list[DuplicateGroup]:
        groups = [g for g in self.by_members.values() if around in (None, *g.customer_ids)]
        groups.sort(key=lambda g: (-g.score, -len(g.customer_ids), g.customer_ids))
        return groups[:limit]


async def find_duplicates(
    viewer: Viewer, *, scan_max: int, limit: int, customer_id: int | None = None
) -> list[DuplicateGroup]:
    """The likeliest duplicate groups among the caller's visible customers, best first.

    With `customer_id` (a visible customer), only the groups it is in.
    """
    visible = Customer.filter(await viewer.customer_filter())
    if customer_id is not None:
        await get_visible_customer(viewer, customer_id)  # NOT_FOUND out of sight
    window = visible.order_by("-updated_at", "-id").limit(scan_max)
    rows = await window.values_list("id", "name_key", "phone_key")
    if customer_id is not None and customer_id not in {row[0] for row in rows}:
        rows += await visible.filter(id=customer_id).values_list("id", "name_key", "phone_key")
    contacts = await _contact_details([row[0] for row in rows])
    rows, contacts = _without_hidden(await viewer.field_rules(), rows, contacts)
    # Comparing thousands of names takes a while: off the event loop, which keeps serving.
    groups = await asyncio.to_thread(_group, rows, contacts)
    return groups.best(limit, customer_id)


def _group(rows: list[tuple], contacts: list[tuple]) -> _Groups:
    """Every group among the customers (id, name key, phone key) and their contacts."""
    groups = _Groups()
    _match_names(groups, {pk: core_name(name) for pk, name, _ in rows})
    phones: dict[str, set[int]] = defaultdict(set)
    emails: dict[str, set[int]] = defaultdict(set)
    for pk, _, phone in rows:
        if phone and len(phone) >= LOCAL_DIGITS:
            phones[phone[-LOCAL_DIGITS:]].add(pk)
    for owner, phone, mobile, email in contacts:
        for number in (normalize_phone(phone), normalize_phone(mobile)):
            if number and len(number) >= LOCAL_DIGITS:
                phones[number[-LOCAL_DIGITS:]].add(owner)
        if email and email.strip():
            emails[email.strip().casefold()].add(owner)
    for reason, index in (
        (DuplicateReason.SAME_PHONE, phones),
        (DuplicateReason.SAME_EMAIL, emails),
    ):
        for members in index.values():
            groups.add(members, reason, _SCORES[reason])
    return groups


def _without_hidden(
    rules: FieldRules, rows: list[tuple], contacts: list[tuple]
) -> tuple[list[tuple], list[tuple]]:
    """Customers and contacts with the phones and emails the viewer may not see blanked."""

    def hidden(record_type: RecordType, name: str) -> bool:
        return rules.strictest(record_type, name).hidden

    if hidden(RecordType.CUSTOMER, "phone"):
        rows = [(pk, name, None) for pk, name, _ in rows]
    blank = [hidden(RecordType.CONTACT, name) for name in ("phone", "mobile", "email")]
    if any(blank):
        contacts = [
            (owner, *(None if hide else value for hide, value in zip(blank, values, strict=True)))
            for owner, *values in contacts
        ]
    return rows, contacts


async def _contact_details(ids: list[int]) -> list[tuple]:
    """(customer id, phone, mobile, email) of the contacts of these customers."""
    details: list[tuple] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        details += await Contact.filter(customer_id__in=chunk).values_list(
            "customer_id", "phone", "mobile", "email"
        )
    return details


def _contained(short: str, long: str) -> bool:
    """A name inside another, long enough to mean something (2 Chinese characters, 4 letters)."""
    least = 4 if short.isascii() else 2
    return len(short) >= least and short in long


def _match_names(groups: _Groups, cores: dict[int, str]) -> None:
    same: dict[str, set[int]] = defaultdict(set)
    for pk, core in cores.items():
        if core:
            same[core].add(pk)
    for members in same.values():
        groups.add(members, DuplicateReason.SAME_NAME, _SCORES[DuplicateReason.SAME_NAME])
    # Equal cores are grouped above: from here on, one entry per distinct core.
    grams = {core: bigrams(core) for core in same}
    frequency = Counter(gram for its in grams.values() for gram in its)
    having: dict[str, list[str]] = defaultdict(list)
    for core, its in grams.items():
        for gram in its:
            having[gram].append(core)
    prefixes: dict[str, list[str]] = defaultdict(list)
    for core, its in grams.items():
        rarest_first = sorted(its, key=lambda gram: (frequency[gram], gram))
        # A longer name holding this one has its rarest bigram too.
        if frequency[rarest_first[0]] <= COMMON_BIGRAM:
            for other in having[rarest_first[0]]:
                if other != core and _contained(core, other):
                    score = 0.7 + 0.2 * len(core) / len(other)
                    groups.add(same[core] | same[other], DuplicateReason.NAME_CONTAINED, score)
        # Prefix filtering: names as similar as SIMILAR share one of their rarest bigrams.
        least_shared = math.ceil(SIMILAR / (2 - SIMILAR) * len(its))
        candidates: set[str] = set()
        for gram in rarest_first[: len(its) - least_shared + 1]:
            if frequency[gram] <= COMMON_BIGRAM:
                candidates.update(prefixes[gram])
                prefixes[gram].append(core)
        for other in candidates:
            if _contained(core, other) or _contained(other, core):
                continue  # NAME_CONTAINED already
            dice = 2 * len(its & grams[other]) / (len(its) + len(grams[other]))
            if dice >= SIMILAR:
                groups.add(same[core] | same[other], DuplicateReason.SIMILAR_NAME, 0.85 * dice)
