"""What is printed on a receipt: its lines as tokens, each with the label it truly has.

The text comes first and the OCR items are written from it, so every word's correct label
(the truth the label writers propose and validate against) is known by construction.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import msgspec

from synthetic.history.config import HistoryConfig
from synthetic.history.reference import FILLERS, Merchant


class Token(msgspec.Struct):
    """A printed word and its correct label (None: a word no label fits)."""

    text: str
    label: str | None


def receipt_text(
    rng: random.Random, merchant: Merchant, t: int, config: HistoryConfig
) -> list[list[Token]]:
    """The printed lines: header, items, totals, each cut or padded to a word count."""
    m = merchant
    low, high = config.lines_per_receipt
    count = rng.randint(low, high)
    day = datetime.fromtimestamp(t - rng.randint(0, 5 * 86400), UTC)
    date = day.strftime("%m/%d/%Y")
    clock = f"{rng.randint(7, 21):02d}:{rng.randint(0, 59):02d}"
    area, number = m.phone.split(" ")
    header = [
        [Token(w, "MERCHANT_NAME") for w in m.name.split()],
        [Token(w, "ADDRESS_LINE") for w in m.street.split()],
        [Token(w, "ADDRESS_LINE") for w in m.city.split()],
        [Token(area, "PHONE_NUMBER"), Token(number, "PHONE_NUMBER")],
        [Token(date, "DATE"), Token(clock, "TIME")],
    ]
    header_count = min(len(header), (count + 1) // 2)
    footer_count = min(5, count - header_count)
    item_count = count - header_count - footer_count
    items: list[list[Token]] = []
    subtotal = 0
    for _ in range(item_count):
        cents = rng.randint(99, 1999)
        product = rng.choice(m.products)
        tokens = [Token(w, "PRODUCT_NAME") for w in product.split()]
        if rng.random() < 0.25:
            quantity = rng.randint(2, 4)
            tokens += [
                Token(str(quantity), "QUANTITY"),
                Token("@", None),
                Token(f"{cents / 100:.2f}", "UNIT_PRICE"),
            ]
            cents *= quantity
        tokens.append(Token(f"{cents / 100:.2f}", "LINE_TOTAL"))
        subtotal += cents
        items.append(tokens)
    tax = subtotal * 725 // 10000
    total = subtotal + tax
    card = f"****{rng.randint(0, 9999):04d}"
    footer_all = {
        "subtotal": [Token("SUBTOTAL", None), Token(f"{subtotal / 100:.2f}", "SUBTOTAL")],
        "tax": [Token("TAX", None), Token(f"{tax / 100:.2f}", "TAX")],
        "total": [Token("TOTAL", None), Token(f"{total / 100:.2f}", "GRAND_TOTAL")],
        "payment": [Token("VISA", "PAYMENT_METHOD"), Token(card, "PAYMENT_METHOD")],
        "website": [Token(m.website.upper(), "WEBSITE")],
    }
    priority = ("total", "subtotal", "tax", "payment", "website")
    chosen = set(priority[:footer_count])
    footer = [footer_all[name] for name in footer_all if name in chosen]
    lines = header[:header_count] + items + footer
    w_low, w_high = config.words_per_line
    shaped = []
    for tokens in lines:
        n = rng.randint(w_low, w_high)
        shaped.append(pad(tokens, n, rng))
    return shaped


def extra_line(rng: random.Random, merchant: Merchant, config: HistoryConfig) -> list[Token]:
    """A line the first OCR pass missed, as a later correction adds it."""
    m = merchant
    candidates = [
        [Token("THANK", None), Token("YOU", None)],
        [Token(m.website.upper(), "WEBSITE")],
        [Token("MEMBER", None), Token("SAVINGS", None), Token("-1.00", "DISCOUNT")],
    ]
    tokens = rng.choice(candidates)
    w_low, w_high = config.words_per_line
    n = max(w_low, min(w_high, len(tokens)))
    return pad(tokens, n, rng)


def pad(tokens: list[Token], n: int, rng: random.Random) -> list[Token]:
    """Exactly ``n`` words: the line cut short, or filled out with register noise."""
    cut = tokens[:n]
    missing = n - len(cut)
    while missing > 0:
        fill = rng.sample(FILLERS, min(missing, len(FILLERS)))
        cut += [Token(text, None) for text in fill]
        missing -= len(fill)
    return cut
