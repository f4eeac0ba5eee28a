"""Reference data the simulated writers draw from: merchants, labels, who proposes and validates.

Constants only, so the writers read as behaviour and a new merchant or label is a one-line
change here. The order of every tuple is part of the output: the generator picks by index.
"""

from __future__ import annotations

from typing import Final

import msgspec

LABELS: Final[tuple[str, ...]] = (
    "MERCHANT_NAME",
    "STORE_HOURS",
    "PHONE_NUMBER",
    "WEBSITE",
    "LOYALTY_ID",
    "ADDRESS_LINE",
    "DATE",
    "TIME",
    "PAYMENT_METHOD",
    "COUPON",
    "DISCOUNT",
    "PRODUCT_NAME",
    "QUANTITY",
    "UNIT_PRICE",
    "LINE_TOTAL",
    "SUBTOTAL",
    "TAX",
    "GRAND_TOTAL",
)


class Merchant(msgspec.Struct, frozen=True):
    """A merchant as its receipts print it and as the place resolution knows it."""

    name: str  # as printed on the receipt
    display: str  # as Google Places names it
    category: str
    street: str
    city: str
    phone: str
    website: str
    latitude: float
    longitude: float
    place_id: str
    products: tuple[str, ...]


# fmt: off
MERCHANTS: Final[tuple[Merchant, ...]] = (
    Merchant(
        "TRADER JOE'S", "Trader Joe's", "grocery_store", "2738 Agoura Rd",
        "Westlake Village, CA 91361", "(805) 494-5040", "traderjoes.com", 34.1478, -118.8317,
        "ChIJ7wYxR1Yl6IARr8NKz1b3sEo",
        ("BANANAS", "ORGANIC MILK", "SOURDOUGH BREAD", "EGGS LARGE 12CT", "AVOCADOS BAG",
         "GREEK YOGURT", "MANDARINS", "DARK CHOCOLATE", "SPINACH", "PEANUT BUTTER"),
    ),
    Merchant(
        "COSTCO WHOLESALE", "Costco Wholesale", "warehouse_store", "5700 Lindero Canyon Rd",
        "Westlake Village, CA 91362", "(818) 707-0022", "costco.com", 34.1522, -118.7997,
        "ChIJq6qq6jQl6IARwZ4bD0wQp1c",
        ("KS PAPER TOWEL", "ROTISSERIE CHKN", "KS WATER 40PK", "BLUEBERRIES 18OZ", "CROISSANTS",
         "OLIVE OIL 2L", "COFFEE BEANS 2LB", "SALMON FILLET", "TP 30 ROLLS"),
    ),
    Merchant(
        "SPROUTS FARMERS MARKET", "Sprouts Farmers Market", "grocery_store", "2310 Michael Dr",
        "Newbury Park, CA 91320", "(805) 498-2620", "sprouts.com", 34.1849, -118.9101,
        "ChIJd8BlQ2Bm6IARsDnV9u8kEjM",
        ("ORG STRAWBERRIES", "BULK ALMONDS", "KOMBUCHA", "HASS AVOCADO", "ORG KALE", "OAT MILK",
         "GRANOLA", "TOMATOES ON VINE"),
    ),
    Merchant(
        "STARBUCKS", "Starbucks", "cafe", "30861 Thousand Oaks Blvd", "Westlake Village, CA 91362",
        "(818) 991-0401", "starbucks.com", 34.1466, -118.8049, "ChIJ3S-JXmom6IAR8nPj0VtAs3I",
        ("GRANDE LATTE", "VENTI COLD BREW", "BUTTER CROISSANT", "BANANA BREAD", "EGG BITES",
         "TALL MOCHA", "CHAI TEA LATTE"),
    ),
    Merchant(
        "CVS PHARMACY", "CVS", "pharmacy", "3900 E Thousand Oaks Blvd", "Thousand Oaks, CA 91362",
        "(805) 495-8444", "cvs.com", 34.1601, -118.8234, "ChIJk0Q7bWEk6IARpYvZrj2Xh0U",
        ("IBUPROFEN 200MG", "TOOTHPASTE", "VITAMIN D3", "BAND AIDS", "SHAMPOO", "GREETING CARD",
         "HAND SOAP"),
    ),
    Merchant(
        "THE HOME DEPOT", "The Home Depot", "hardware_store", "400 N Moorpark Rd",
        "Thousand Oaks, CA 91360", "(805) 379-2290", "homedepot.com", 34.1764, -118.8755,
        "ChIJ0R3_4xIk6IARZ5Q2f6hDsYk",
        ("2X4 STUD 8FT", "WOOD SCREWS", "PAINT ROLLER", "LED BULB 4PK", "DUCT TAPE",
         "GARDEN HOSE", "SANDPAPER"),
    ),
    Merchant(
        "IN-N-OUT BURGER", "In-N-Out Burger", "restaurant", "4115 E Thousand Oaks Blvd",
        "Westlake Village, CA 91362", "(800) 786-1000", "in-n-out.com", 34.1484, -118.8113,
        "ChIJ6YyVd1Mk6IARwS6v3h8q2rQ",
        ("DOUBLE-DOUBLE", "CHEESEBURGER", "FRENCH FRIES", "CHOC SHAKE", "LEMONADE MED"),
    ),
    Merchant(
        "CAFÉ RIO", "Café Rio Mexican Grill", "restaurant", "2900 Townsgate Rd",
        "Westlake Village, CA 91361", "(805) 557-1940", "caferio.com", 34.1561, -118.8290,
        "ChIJ_3rM3Ekl6IAR1c8yAF2p9wE",
        ("PORK BARBACOA", "CHICKEN TOSTADA", "CHIPS & QUESO", "HORCHATA"),
    ),
)
# fmt: on
FILLERS: Final = ("ST#0421", "OP#17", "TRN#8841", "REG", "3", "ITEMS", "*", "SAVED", "MEMBER")
CONFUSIONS: Final[dict[str, str]] = {
    "LINE_TOTAL": "UNIT_PRICE",
    "UNIT_PRICE": "LINE_TOTAL",
    "SUBTOTAL": "GRAND_TOTAL",
    "GRAND_TOTAL": "SUBTOTAL",
    "TAX": "LINE_TOTAL",
    "DATE": "TIME",
    "TIME": "DATE",
    "ADDRESS_LINE": "MERCHANT_NAME",
    "MERCHANT_NAME": "PRODUCT_NAME",
    "PRODUCT_NAME": "MERCHANT_NAME",
    "PHONE_NUMBER": "LOYALTY_ID",
    "PAYMENT_METHOD": "LOYALTY_ID",
    "QUANTITY": "UNIT_PRICE",
    "WEBSITE": "MERCHANT_NAME",
    "DISCOUNT": "COUPON",
}
PROPOSERS: Final = ("llm-initial-tagging", "label-suggestion-agent", "label-harmonizer")
PATTERN_PROPOSER: Final = "pattern-matcher"
VALIDATORS: Final = ("label-evaluator-llm", "label-validation-agent", "manual-review")
VALIDATION_METHODS: Final = ("PHONE_LOOKUP", "ADDRESS_LOOKUP", "TEXT_SEARCH", "INFERENCE")
MATCH_FIELDS: Final = ("name", "phone", "address", "website")
EXTRACTED_TYPES: Final[dict[str, str]] = {
    "PHONE_NUMBER": "phone",
    "ADDRESS_LINE": "address",
    "WEBSITE": "url",
}
