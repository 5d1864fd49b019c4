"""The words customers, orders and locations are described with, defined once.

`rules` imports no project code, so the rule stages, the engine and the API all take these
from here; each list is in its natural order (lowest tier, slowest service first).
"""

from __future__ import annotations

CUSTOMER_TIERS = ("standard", "silver", "gold", "platinum")

# The customer pays up front: the payment is authorised on release and captured as each
# shipment is invoiced.
PAID_UP_FRONT = ("prepaid", "card", "cod")
# Business terms: the customer buys on account, is invoiced and pays later.
ON_ACCOUNT = ("net15", "net30", "net60")
PAYMENT_TERMS = PAID_UP_FRONT + ON_ACCOUNT

SERVICE_LEVELS = ("economy", "standard", "express", "overnight")

LOCATION_KINDS = ("warehouse", "store")
