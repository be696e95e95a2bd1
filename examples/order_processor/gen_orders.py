#!/usr/bin/env python3
"""Writes the order documents that `kc produce --json` does not make, one JSON
document per line (for `kc produce --file`), deterministically:

  placed-invalid.jsonl  orders.placed documents that break one rule each
                        (a missing field, a wrong type, a negative amount, an
                        amount that is not the items' total, no items, ...)
  updates.jsonl         orders.updated documents: `--rounds` status changes
                        (paid, shipped, delivered) for orders ord-0 ..
                        ord-(orders-1) as `kc produce --json` numbers them;
                        every `--invalid-every`th one is invalid instead.

Line n of updates.jsonl updates order n % orders, so `kc produce --file
updates.jsonl --keys ORDERS` gives every update of one order the same key
(key-<n % ORDERS>), hence the same partition: they are read in order.

Prints what it wrote as key=value words on stdout (the expected counts).
Standard library only.
"""
import argparse
import json
import os

STATUSES = ["paid", "shipped", "delivered"]


def order_id(i):
    return f"ord-{i:010d}"


def good_placed(i):
    items = [{"sku": f"SKU-{i % 10000:04d}", "qty": 2, "unit_price": 12.50},
             {"sku": f"SKU-{(i * 7) % 10000:04d}", "qty": 1, "unit_price": 5.25}]
    return {"order_id": order_id(i), "customer_id": f"cust-{i % 100000:05d}", "status": "placed",
            "amount": 30.25, "currency": "EUR", "items": items, "created_at": "2026-11-24T12:00:00Z"}


# Each breaks one rule of the order processor (see main.cpp).
def invalid_placed(k, i):
    o = good_placed(i)
    kind = k % 8
    if kind == 0:
        del o["customer_id"]
    elif kind == 1:
        o["amount"] = "30.25"  # a string, not a number
    elif kind == 2:
        o["amount"] = -30.25
    elif kind == 3:
        o["amount"] = 99.99  # not the items' total
    elif kind == 4:
        o["items"] = []
    elif kind == 5:
        o["items"][0]["qty"] = 1.5  # not an integer
    elif kind == 6:
        o["currency"] = "EURO"
    else:
        return '["ord-array", 30.25]'  # JSON, but not an object
    return json.dumps(o, separators=(",", ":"))


def invalid_update(k, i):
    kind = k % 4
    if kind == 0:
        return json.dumps({"order_id": order_id(i), "status": "lost-in-space"})
    if kind == 1:
        return json.dumps({"status": "paid"})  # no order_id
    if kind == 2:
        return json.dumps({"order_id": order_id(i), "status": 3})
    return '{"order_id": "' + order_id(i) + '", "status": "shipp'  # cut short


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="directory for the files")
    ap.add_argument("--invalid-placed", type=int, default=24)
    ap.add_argument("--first-invalid-id", type=int, default=1_000_000,
                    help="order number of the first invalid placed order (away from kc produce's)")
    ap.add_argument("--orders", type=int, default=500, help="orders that get updates")
    ap.add_argument("--rounds", type=int, default=3, help="updates per order (at most 3)")
    ap.add_argument("--invalid-every", type=int, default=37, help="every Nth update is invalid (0: none)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    with open(os.path.join(a.out, "placed-invalid.jsonl"), "w") as f:
        for k in range(a.invalid_placed):
            f.write(invalid_placed(k, a.first_invalid_id + k) + "\n")

    updates = a.orders * min(a.rounds, len(STATUSES))
    invalid = 0
    with open(os.path.join(a.out, "updates.jsonl"), "w") as f:
        for n in range(updates):
            i = n % a.orders
            if a.invalid_every and n % a.invalid_every == a.invalid_every - 1:
                f.write(invalid_update(invalid, i) + "\n")
                invalid += 1
            else:
                u = {"order_id": order_id(i), "status": STATUSES[n // a.orders],
                     "updated_at": f"2026-11-25T{n // a.orders + 8:02d}:00:00Z"}
                f.write(json.dumps(u, separators=(",", ":")) + "\n")

    print(f"placed_invalid={a.invalid_placed} updates={updates} updates_invalid={invalid}")


if __name__ == "__main__":
    main()
