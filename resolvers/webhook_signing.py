"""Signing webhook deliveries, and checking a signature the way a receiver should.

Each delivery carries `X-Meihua-Timestamp` (unix seconds) and
`X-Meihua-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>`
keyed with the hook's secret. Signing the timestamp with the body lets a
receiver refuse an old delivery replayed by someone who captured it.

`verify_signature` uses the standard library only, so integrators can copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE = 300  # seconds a receiver accepts between signing and checking


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The `X-Meihua-Signature` header value for `body` sent at `timestamp`."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


def verify_signature(
    secret: str,
    body: bytes,
    timestamp: str,
    signature: str,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """True when `signature` signs this raw body and timestamp, and the timestamp is recent.

    Pass the raw request body (before any JSON parsing) and the two headers
    as received. A delivery signed more than `tolerance` seconds away from
    `now` is refused even with a good signature: it may be a replay.
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - sent_at) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, body, sent_at), signature or "")
