"""The LEAN sample rotation (examples/strategies/lean_etfs.clj) in backtrader, on the
same adjusted daily bars, for a speed comparison with `alchemiser backtest`.

    python3 benches/backtrader_lean.py [LEAN_ROOT] [FROM] [TO]

Prints one JSON line: sessions, seconds spent in cerebro.run(), final value. Needs
`pip install backtrader`. Indicator conventions follow the engine's (RSI smoothed with
alpha = 1/n over the last max(3n, 200) closes; sample stdev; percent returns).
"""
import datetime
import io
import json
import math
import sys
import time
import zipfile
from decimal import Decimal
from pathlib import Path

import backtrader as bt

SYMBOLS = ["SPY", "IWM", "AAPL", "IBM", "BAC", "AIG"]


def load(root, symbol):
    z = zipfile.ZipFile(Path(root) / "equity/usa/daily" / f"{symbol.lower()}.zip")
    text = z.read(z.namelist()[0]).decode()
    factors = []
    for line in (Path(root) / "equity/usa/factor_files" / f"{symbol.lower()}.csv").read_text().splitlines():
        f = line.split(",")
        factors.append((f[0], Decimal(f[1]) * Decimal(f[2])))
    rows, k = [], 0
    for line in text.splitlines():
        f = line.split(",")
        day = f[0][:8]
        while k < len(factors) and factors[k][0] < day:
            k += 1
        factor = factors[k][1] if k < len(factors) else Decimal(1)
        o, h, l, c = (float(Decimal(x) / 10000 * factor) for x in f[1:5])
        rows.append((datetime.datetime.strptime(day, "%Y%m%d"), o, h, l, c, float(f[5])))
    return rows


class Feed(bt.feeds.DataBase):
    def __init__(self, rows):
        super().__init__()
        self.rows = rows
        self.i = 0

    def _load(self):
        if self.i >= len(self.rows):
            return False
        d, o, h, l, c, v = self.rows[self.i]
        self.i += 1
        self.lines.datetime[0] = bt.date2num(d)
        self.lines.open[0], self.lines.high[0], self.lines.low[0], self.lines.close[0] = o, h, l, c
        self.lines.volume[0] = v
        self.lines.openinterest[0] = 0
        return True


def rsi(c, n):
    tail = c[-max(3 * n, 200):]
    a = 1.0 / n
    g = l = 0.0
    for x, y in zip(tail, tail[1:]):
        d = y - x
        g = (1 - a) * g + a * max(d, 0.0)
        l = (1 - a) * l + a * max(-d, 0.0)
    if l == 0 and g == 0:
        return 50.0
    if l == 0:
        return 100.0
    return 100 - 100 / (1 + g / l)


def rets(c, n):
    t = c[-(n + 1):]
    return [(y / x - 1) * 100 for x, y in zip(t, t[1:])]


def stdev(v):
    m = sum(v) / len(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def cumret(c, n):
    return (c[-1] / c[-1 - n] - 1) * 100


def maxdd(c, n):
    peak, worst = -1e300, 0.0
    for x in c[-n:]:
        peak = max(peak, x)
        worst = max(worst, (peak - x) / peak * 100)
    return worst


class Rotation(bt.Strategy):
    def __init__(self):
        self.by = {d._name: d for d in self.datas}

    def closes(self, s):
        d = self.by[s]
        # The most any indicator here looks back is 201 closes (RSI over 200 + 1).
        return list(d.close.get(size=min(len(d), 260)))

    def next(self):
        if any(len(d) < 200 for d in self.datas):
            return
        c = {s: self.closes(s) for s in SYMBOLS}
        w = {}
        spy = c["SPY"]
        if spy[-1] > sum(spy[-200:]) / 200:
            top = sorted(["SPY", "IWM", "AAPL", "IBM", "BAC"], key=lambda s: (-cumret(c[s], 60), s))[:3]
            for s in top:
                w[s] = w.get(s, 0) + 0.7 / 3
            if rsi(c["IWM"], 10) > 79:
                w["SPY"] = w.get("SPY", 0) + 0.3
            else:
                inv = {s: 1 / stdev(rets(c[s], 20)) for s in ["IWM", "SPY"]}
                tot = sum(inv.values())
                for s, v in inv.items():
                    w[s] = w.get(s, 0) + 0.3 * v / tot
        elif rsi(spy, 10) < 30:
            w["SPY"] = 1.0
        else:
            for s in sorted(["IBM", "BAC", "AIG", "SPY"], key=lambda s: (maxdd(c[s], 60), s))[:2]:
                w[s] = 0.5
        for s in SYMBOLS:
            self.order_target_percent(self.by[s], target=w.get(s, 0.0) * 0.99)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).resolve().parents[1] / "examples/lean")
    start = datetime.datetime.strptime(sys.argv[2], "%Y-%m-%d") if len(sys.argv) > 2 else datetime.datetime(1998, 1, 1)
    end = datetime.datetime.strptime(sys.argv[3], "%Y-%m-%d") if len(sys.argv) > 3 else datetime.datetime(2021, 3, 31)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100000.0)
    for s in SYMBOLS:
        rows = [r for r in load(root, s) if start <= r[0] <= end]
        cerebro.adddata(Feed(rows), name=s)
    cerebro.addstrategy(Rotation)
    t0 = time.perf_counter()
    result = cerebro.run()
    seconds = time.perf_counter() - t0
    sessions = len(result[0].datas[0])
    print(json.dumps({"engine": "backtrader", "version": bt.__version__, "sessions": sessions,
                      "seconds": round(seconds, 3), "final_value": round(cerebro.broker.getvalue(), 2)}))


if __name__ == "__main__":
    main()
