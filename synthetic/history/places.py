"""The merchant resolution writers: the receipt's place (or legacy metadata) item.

A place INSERT or relevant MODIFY is an event; most later passes only touch bookkeeping
fields (timestamp, validated_by, matched_fields, status), which ingest must see as unchanged.
"""

from __future__ import annotations

from decimal import Decimal

from receipt_events.attributes import Item, Value
from synthetic.history import ids
from synthetic.history.receipt_state import ReceiptState
from synthetic.history.reference import MATCH_FIELDS, VALIDATION_METHODS
from synthetic.history.values import decimal8, slug


class PlaceWriter(ReceiptState):
    """Resolves one receipt's merchant, and revisits it."""

    def insert_place(self, kind: str | None = None) -> None:
        """The resolved merchant, as a RECEIPT_PLACE or (older writers) a RECEIPT_METADATA."""
        rng = self.rng
        m = self.merchant
        if kind is None:
            kind = "RECEIPT_METADATA" if rng.random() < 0.2 else "RECEIPT_PLACE"
        stamp = self.iso()
        method = rng.choice(VALIDATION_METHODS)
        matched = sorted(rng.sample(MATCH_FIELDS, rng.randint(1, 3)))
        reasoning = f"Matched {', '.join(matched)} via {method.lower()}"
        if kind == "RECEIPT_METADATA":
            sk = ids.metadata_sk(self.rsk)
            item: Item = {
                "PK": self.pk,
                "SK": sk,
                "GSI1PK": f"MERCHANT#{slug(m.name)}",
                "GSI1SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI2PK": f"PLACE#{m.place_id}",
                "GSI2SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI3PK": "MERCHANT_VALIDATION",
                "GSI3SK": "STATUS#MATCHED",
                "TYPE": "RECEIPT_METADATA",
                "place_id": m.place_id,
                "merchant_name": m.name,
                "merchant_category": m.category,
                "address": f"{m.street}, {m.city}",
                "phone_number": m.phone,
                "matched_fields": frozenset(matched),
                "timestamp": stamp,
                "validated_by": method,
                "reasoning": reasoning,
                "canonical_place_id": None,  # optional strings left empty are written NULL
                "canonical_merchant_name": None,
                "canonical_address": None,
                "canonical_phone_number": None,
                "validation_status": "MATCHED",
            }
        else:
            sk = ids.place_sk(self.rsk)
            confidence = Decimal(f"{rng.uniform(0.7, 0.99):.2f}")
            item = {
                "PK": self.pk,
                "SK": sk,
                "GSI1PK": f"MERCHANT#{slug(m.display)}",
                "GSI1SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI2PK": f"PLACE#{m.place_id}",
                "GSI2SK": f"IMAGE#{self.image_id}#{sk}",
                "GSI3PK": "PLACE_VALIDATION",
                "GSI3SK": f"CONFIDENCE#{confidence:.4f}#STATUS#MATCHED#IMAGE#{self.image_id}",
                "GSI4PK": f"IMAGE#{self.image_id}#{self.rsk}",
                "GSI4SK": "1_PLACE",
                "TYPE": "RECEIPT_PLACE",
                "image_id": self.image_id,
                "receipt_id": Decimal(self.receipt_id),
                "place_id": m.place_id,
                "merchant_name": m.display,
                "validation_status": "MATCHED",
                "timestamp": stamp,
                "confidence": confidence,
                "merchant_category": m.category,
                "formatted_address": f"{m.street}, {m.city}, USA",
                "short_address": m.street,
                "phone_number": m.phone,
                "phone_intl": "+1 " + m.phone.replace("(", "").replace(") ", "-"),
                "website": f"https://www.{m.website}/",
                "maps_url": f"https://maps.google.com/?cid={rng.getrandbits(63)}",
                "business_status": "OPERATIONAL",
                "plus_code": None,
                "validated_by": method,
                "reasoning": reasoning,
                "places_api_version": "v1",
                "merchant_types": [m.category, "point_of_interest", "establishment"],
                "matched_fields": list[Value](matched),
                "latitude": decimal8(m.latitude),
                "longitude": decimal8(m.longitude),
                "open_now": rng.random() < 0.7,
            }
        self.put(sk, item, "place_insert")
        self.place_sk = sk

    def modify_place(self) -> None:
        """Later resolution passes: some change a relevant field, most only bookkeeping."""
        rng = self.rng
        for _ in range(rng.randint(0, 3)):
            if self.place_sk is None:
                return
            self.tick(60, 43200)
            item = self.current(self.place_sk)
            item["timestamp"] = self.iso()
            if rng.random() < 0.45:
                self.modify_relevant(item)
                self.put(self.place_sk, item, "place_modify")
                continue
            choice = rng.randrange(3)
            if choice == 0:
                item["validated_by"] = "MANUAL" if item["validated_by"] != "MANUAL" else "INFERENCE"
            elif choice == 1:
                fields = sorted(rng.sample(MATCH_FIELDS, rng.randint(1, 4)))
                if item["TYPE"] == "RECEIPT_METADATA":
                    item["matched_fields"] = frozenset(fields)
                else:
                    item["matched_fields"] = list[Value](fields)
            else:
                status = "UNSURE" if item["validation_status"] == "MATCHED" else "MATCHED"
                item["validation_status"] = status
                if item["TYPE"] == "RECEIPT_METADATA":
                    item["GSI3SK"] = f"STATUS#{status}"
                else:
                    confidence = Decimal(f"{rng.uniform(0.5, 0.99):.2f}")
                    item["confidence"] = confidence
                    item["GSI3SK"] = (
                        f"CONFIDENCE#{confidence:.4f}#STATUS#{status}#IMAGE#{self.image_id}"
                    )
            self.put(self.place_sk, item, "place_modify_irrelevant")

    def modify_relevant(self, item: Item) -> None:
        """Change one relevant place field to a different value."""
        m = self.merchant
        metadata = item["TYPE"] == "RECEIPT_METADATA"
        options = ["merchant_name", "phone_number", "merchant_category"]
        if metadata and item.get("canonical_merchant_name") is None:
            options.append("canonical_merchant_name")
        field = self.rng.choice(options)
        if field == "merchant_name":
            name = m.display if item["merchant_name"] != m.display else m.name
            item["merchant_name"] = name
            if not metadata or item.get("canonical_merchant_name") is None:
                item["GSI1PK"] = f"MERCHANT#{slug(name)}"
        elif field == "phone_number":
            digits = "".join(c for c in m.phone if c.isdigit())
            dashed = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
            item["phone_number"] = dashed if item["phone_number"] != dashed else m.phone
        elif field == "merchant_category":
            alternatives = {"grocery_store": "supermarket", "restaurant": "fast_food_restaurant"}
            other = alternatives.get(m.category, "store")
            item["merchant_category"] = other if item["merchant_category"] != other else m.category
        else:
            item["canonical_merchant_name"] = m.display
            item["canonical_place_id"] = m.place_id
            item["GSI1PK"] = f"MERCHANT#{slug(m.display)}"
