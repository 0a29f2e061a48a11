"""Write train.jsonl and validation.jsonl: one-page PDF invoices, and the fields a finance
team wants from each as JSON: {"vendor", "invoice", "total", "currency"}.

Deterministic (fixed seed). Each invoice is a real PDF (Helvetica text, written by the
small PDF writer below), inlined in the record: training examples as OpenAI `file` content
parts with a data: URL, validation examples as Gemini `inlineData` parts. Vendors, layouts
(the total before or after the line items, "Amount due" or "Total"), currencies and
amounts vary; the validation invoices are new draws.

    python specs/document/generate_data.py
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

VENDORS = ["Acme Tools", "Northwind Traders", "Blue Harbor Supply", "Kestrel Office", "Fjord Logistics", "Orchard Foods",
           "Granite Print", "Helios Energy", "Maple Software", "Copperline Parts", "Tidewater Marine", "Summit Cleaning"]
ITEMS = ["Consulting hours", "Paper A4 (box)", "Shipping", "Licence renewal", "Spare parts", "Cleaning service", "Printer toner",
         "Fresh produce", "Fuel surcharge", "Support plan"]
CURRENCIES = ["EUR", "USD", "GBP", "CHF"]
QUESTION = 'Extract the vendor, invoice number, total and currency of this invoice as JSON: {"vendor", "invoice", "total", "currency"}'


def pdf(lines: list[str]) -> bytes:
    """A one-page PDF (A5 in points) showing `lines` in 11-point Helvetica."""
    text = " 0 -15 Td ".join("(" + line.replace("\\", "").replace("(", "").replace(")", "") + ") Tj" for line in lines)
    stream = f"BT /F1 11 Tf 36 560 Td {text} ET".encode()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 595] /Contents 5 0 R /Resources << /Font << /F1 3 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream)]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def invoice(rng: random.Random) -> tuple[bytes, dict]:
    vendor, currency = rng.choice(VENDORS), rng.choice(CURRENCIES)
    number = f"INV-{rng.randint(1000, 9999)}"
    items = [(rng.choice(ITEMS), rng.randint(1, 9), rng.randint(5, 400) + rng.choice([0, 0.5, 0.25, 0.99])) for _ in range(rng.randint(1, 4))]
    total = f"{sum(q * p for _, q, p in items):.2f}"
    header = [vendor, f"Invoice {number}", f"Date: 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"]
    lines = [f"{name}  x{q}  {p:.2f} {currency}" for name, q, p in items]
    due = [f"{rng.choice(['Total', 'Amount due'])}: {total} {currency}"]
    body = header + ([""] + lines + [""] + due if rng.random() < 0.7 else [""] + due + [""] + lines)
    return pdf(body), {"vendor": vendor, "invoice": number, "total": total, "currency": currency}


def openai_record(data: bytes, answer: dict) -> dict:
    url = "data:application/pdf;base64," + base64.b64encode(data).decode()
    return {"messages": [
        {"role": "user", "content": [{"type": "file", "file": {"file_data": url}}, {"type": "text", "text": QUESTION}]},
        {"role": "assistant", "content": json.dumps(answer)},
    ]}


def gemini_record(data: bytes, answer: dict) -> dict:
    return {"contents": [
        {"role": "user", "parts": [{"inlineData": {"mimeType": "application/pdf", "data": base64.b64encode(data).decode()}}, {"text": QUESTION}]},
        {"role": "model", "parts": [{"text": json.dumps(answer)}]},
    ]}


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(7)
    train = [openai_record(*invoice(rng)) for _ in range(96)]
    validation = [gemini_record(*invoice(rng)) for _ in range(32)]
    (here / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (here / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in validation))


if __name__ == "__main__":
    main()
