"""The large-universe rule of examples/bench_universe.rs in backtrader, on the same CSV
files, for a speed comparison with `alchemiser backtest`:

    if SPY > SMA200: top PICK by 60-day cumulative return, else bottom PICK by 20-day
    stdev-return (sample stdev of daily percent changes), equal weights.

    python3 benches/backtrader_universe.py DATA_DIR FROM TO PICK

Prints one JSON line: sessions, seconds (loading included, as the engine's figure is),
final value. Needs `pip install backtrader`.
"""
import csv
import datetime
import json
import sys
import time
from pathlib import Path

import backtrader as bt

# The list-backed feed and the sample stdev of the LEAN comparison (same folder).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from backtrader_lean import Feed, stdev  # noqa: E402


def load(path, start, end):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            d = datetime.datetime.strptime(r["date"], "%Y-%m-%d")
            if start <= d <= end + datetime.timedelta(days=0):
                rows.append((d, float(r["open"]), float(r["high"]), float(r["low"]), float(r["close"]), float(r["volume"])))
    return rows


class Universe(bt.Strategy):
    params = (("pick", 10),)

    def __init__(self):
        self.spy = self.getdatabyname("SPY")
        self.candidates = [d for d in self.datas if d._name != "SPY"]

    def next(self):
        if len(self.spy) < 201:
            return
        spy = list(self.spy.close.get(size=200))
        if spy[-1] > sum(spy) / 200:
            scored = []
            for d in self.candidates:
                c = d.close.get(size=61)
                scored.append((-(c[-1] / c[0] - 1) * 100, d._name, d))
        else:
            scored = []
            for d in self.candidates:
                c = list(d.close.get(size=21))
                r = [(y / x - 1) * 100 for x, y in zip(c, c[1:])]
                scored.append((stdev(r), d._name, d))
        scored.sort(key=lambda t: (t[0], t[1]))
        chosen = {t[2] for t in scored[: self.p.pick]}
        for d in self.candidates:
            if d in chosen:
                self.order_target_percent(d, target=0.99 / self.p.pick)
            elif self.getposition(d).size:
                self.order_target_percent(d, target=0.0)


def main():
    folder = Path(sys.argv[1])
    start = datetime.datetime.strptime(sys.argv[2], "%Y-%m-%d")
    end = datetime.datetime.strptime(sys.argv[3], "%Y-%m-%d")
    pick = int(sys.argv[4])
    t0 = time.perf_counter()
    # A year of history before the first trading day, as the engine's warm-up reads.
    history = start - datetime.timedelta(days=400)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker.setcash(100000.0)
    for path in sorted(folder.glob("*.csv")):
        cerebro.adddata(Feed(load(path, history, end)), name=path.stem)
    cerebro.addstrategy(Universe, pick=pick)
    result = cerebro.run()
    seconds = time.perf_counter() - t0
    print(json.dumps({"engine": "backtrader", "version": bt.__version__, "sessions": len(result[0].datas[0]),
                      "seconds": round(seconds, 3), "final_value": round(cerebro.broker.getvalue(), 2)}))


if __name__ == "__main__":
    main()
