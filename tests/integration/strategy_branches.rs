//! The three original strategies and the default symphony, branch by branch, on crafted
//! bar series (no offline data covers those ETFs). Each case states the indicator facts
//! it relies on, and the test checks the crafted data really has them before checking
//! the allocation.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use alchemiser::domain::Symbol;
use alchemiser::indicators::rsi;
use alchemiser::market::{BarSeries, MarketData};
use alchemiser::strategy::book::referenced_symbols;
use alchemiser::strategy::dsl::{evaluate, parse_symphony, Evaluation, Symphony};
use chrono::{Days, NaiveDate};
use rust_decimal::Decimal;

const BARS: usize = 300;

/// How a crafted series looks at its end.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// RSI target and the window it is hit for.
    rsi: f64,
    window: usize,
    /// Price relative to its 200-day average.
    above_sma200: bool,
    /// A fall of about 17% within the last 60 days.
    crash60: bool,
}

fn rsi_of(v: f64) -> Shape {
    Shape {
        rsi: v,
        window: 10,
        above_sma200: true,
        crash60: false,
    }
}

impl Shape {
    fn below_sma200(mut self) -> Self {
        self.above_sma200 = false;
        self
    }
    fn window(mut self, w: usize) -> Self {
        self.window = w;
        self
    }
    fn crash60(mut self) -> Self {
        self.crash60 = true;
        self
    }
}

/// Closes: a level step (for the 200-day average and the 60-day return) and then an
/// alternating up/down pattern whose up-move is solved for so the RSI hits its target.
fn closes(shape: Shape) -> Vec<f64> {
    let build = |up: f64| -> Vec<f64> {
        let down = 0.1;
        let mut out = Vec::with_capacity(BARS);
        let mut level = 1000.0;
        for i in 0..BARS {
            let pattern_start = if shape.crash60 { BARS - 60 } else { BARS - 150 };
            if i < pattern_start {
                let step = if shape.crash60 {
                    1200.0
                } else if shape.above_sma200 {
                    500.0
                } else {
                    2000.0
                };
                out.push(step);
                continue;
            }
            // Ends on an up-move.
            if (BARS - 1 - i).is_multiple_of(2) {
                level += up;
            } else {
                level -= down;
            }
            out.push(level);
        }
        out
    };
    let (mut lo, mut hi) = (1e-6f64, 1e3f64);
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if rsi(&build(mid), shape.window).unwrap() < shape.rsi {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    build(hi)
}

fn series(symbol: &str, closes: &[f64]) -> BarSeries {
    common::daily_series(symbol, closes)
}

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 1).unwrap() + Days::new(BARS as u64 - 1)
}

fn load(file: &str) -> Symphony {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/strategies")
        .join(file);
    parse_symphony(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Every symbol the symphony references gets `default`, except those in `shapes`.
fn run(symphony: &Symphony, default: Shape, shapes: &[(&str, Shape)]) -> Evaluation {
    let mut data = MarketData::default();
    for symbol in referenced_symbols(symphony).into_keys() {
        let shape = shapes
            .iter()
            .find(|(s, _)| *s == symbol)
            .map_or(default, |(_, s)| *s);
        data.series
            .insert(symbol.clone(), Arc::new(series(&symbol, &closes(shape))));
    }
    evaluate(symphony, &data, as_of()).unwrap()
}

/// Checks a fact about an indicator the case relies on (`"rsi(SPY,10)" > 79`).
fn fact(e: &Evaluation, label: &str, op: &str, bound: f64) {
    let v: f64 = e
        .indicators
        .get(label)
        .unwrap_or_else(|| panic!("{label} was not evaluated: {:?}", e.indicators))
        .to_string()
        .parse()
        .unwrap();
    let ok = match op {
        ">" => v > bound,
        "<" => v < bound,
        _ => unreachable!(),
    };
    assert!(ok, "crafted data: expected {label} {op} {bound}, got {v}");
}

fn weights(pairs: &[(&str, &str)]) -> BTreeMap<Symbol, Decimal> {
    pairs
        .iter()
        .map(|(s, w)| (Symbol::from(*s), Decimal::from_str(w).unwrap()))
        .collect()
}

fn neutral() -> Shape {
    rsi_of(50.0)
}

#[test]
fn crafted_series_hit_their_targets() {
    for target in [20.0, 29.0, 45.0, 79.5, 85.0] {
        let c = closes(rsi_of(target));
        assert!((rsi(&c, 10).unwrap() - target).abs() < 1e-6);
    }
    let c = closes(rsi_of(60.0).window(20));
    assert!((rsi(&c, 20).unwrap() - 60.0).abs() < 1e-6);
}

mod tecl {
    use super::*;

    fn sym() -> Symphony {
        load("tecl.clj")
    }

    #[test]
    fn bull_overbought_tqqq_hedges() {
        let e = run(&sym(), neutral(), &[("TQQQ", rsi_of(85.0))]);
        fact(&e, "rsi(TQQQ,10)", ">", 79.0);
        assert_eq!(e.weights, weights(&[("UVXY", "0.25"), ("BIL", "0.75")]));
    }

    #[test]
    fn bull_overbought_spy_hedges() {
        let e = run(&sym(), neutral(), &[("SPY", rsi_of(82.0))]);
        fact(&e, "rsi(TQQQ,10)", "<", 79.0);
        fact(&e, "rsi(SPY,10)", ">", 80.0);
        assert_eq!(e.weights, weights(&[("UVXY", "0.25"), ("BIL", "0.75")]));
    }

    #[test]
    fn bull_kmlm_switch_all_four_leaves() {
        let e = run(
            &sym(),
            neutral(),
            &[("XLK", rsi_of(83.0)), ("KMLM", rsi_of(40.0))],
        );
        fact(&e, "rsi(XLK,10)", ">", 81.0);
        assert_eq!(e.weights, weights(&[("BIL", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[("XLK", rsi_of(70.0)), ("KMLM", rsi_of(40.0))],
        );
        assert_eq!(e.weights, weights(&[("TECL", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[("XLK", rsi_of(25.0)), ("KMLM", rsi_of(40.0))],
        );
        fact(&e, "rsi(XLK,10)", "<", 29.0);
        assert_eq!(e.weights, weights(&[("TECL", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[("XLK", rsi_of(35.0)), ("KMLM", rsi_of(40.0))],
        );
        assert_eq!(e.weights, weights(&[("BIL", "1")]));
    }

    #[test]
    fn bear_oversold_rebounds() {
        let bear = neutral().below_sma200();
        let e = run(&sym(), neutral(), &[("SPY", bear), ("TQQQ", rsi_of(25.0))]);
        fact(&e, "rsi(TQQQ,10)", "<", 31.0);
        assert_eq!(e.weights, weights(&[("TECL", "1")]));
        let e = run(&sym(), neutral(), &[("SPY", bear), ("SPXL", rsi_of(25.0))]);
        assert_eq!(e.weights, weights(&[("SPXL", "1")]));
    }

    #[test]
    fn bear_volatility_spike() {
        let bear = neutral().below_sma200();
        let e = run(&sym(), neutral(), &[("SPY", bear), ("UVXY", rsi_of(88.0))]);
        fact(&e, "rsi(UVXY,10)", ">", 84.0);
        assert_eq!(e.weights, weights(&[("UVXY", "0.15"), ("BIL", "0.85")]));
        let e = run(&sym(), neutral(), &[("SPY", bear), ("UVXY", rsi_of(78.0))]);
        assert_eq!(e.weights, weights(&[("BIL", "1")]));
    }

    #[test]
    fn bear_kmlm_switch_ends_in_the_stronger_of_sqqq_and_bsv() {
        let bear = neutral().below_sma200();
        let e = run(
            &sym(),
            neutral(),
            &[("SPY", bear), ("XLK", rsi_of(83.0)), ("KMLM", rsi_of(40.0))],
        );
        assert_eq!(e.weights, weights(&[("BIL", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[("SPY", bear), ("XLK", rsi_of(60.0)), ("KMLM", rsi_of(40.0))],
        );
        assert_eq!(e.weights, weights(&[("TECL", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[("SPY", bear), ("XLK", rsi_of(20.0)), ("KMLM", rsi_of(40.0))],
        );
        assert_eq!(e.weights, weights(&[("TECL", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[
                ("SPY", bear),
                ("XLK", rsi_of(35.0)),
                ("KMLM", rsi_of(40.0)),
                ("SQQQ", rsi_of(60.0).window(9)),
                ("BSV", rsi_of(40.0).window(9)),
            ],
        );
        fact(&e, "rsi(SQQQ,9)", ">", 55.0);
        assert_eq!(e.weights, weights(&[("SQQQ", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[
                ("SPY", bear),
                ("XLK", rsi_of(35.0)),
                ("KMLM", rsi_of(40.0)),
                ("SQQQ", rsi_of(40.0).window(9)),
                ("BSV", rsi_of(60.0).window(9)),
            ],
        );
        assert_eq!(e.weights, weights(&[("BSV", "1")]));
    }
}

mod nuclear {
    use super::*;

    fn sym() -> Symphony {
        load("nuclear.clj")
    }

    const HEDGE: &[(&str, &str)] = &[("UVXY", "0.75"), ("BTAL", "0.25")];

    #[test]
    fn overbought_chains_pick_uvxy_or_the_hedge() {
        // Each chain's trigger at 80 (over 79, under 81) → the hedge; any later member > 81 → UVXY.
        for (trigger, later) in [
            ("SPY", "XLF"),
            ("IOO", "VTV"),
            ("TQQQ", "XLF"),
            ("VTV", "XLF"),
            ("XLF", "XLF"),
        ] {
            let e = run(&sym(), neutral(), &[(trigger, rsi_of(80.0))]);
            fact(&e, &format!("rsi({trigger},10)"), ">", 79.0);
            assert_eq!(
                e.weights,
                weights(HEDGE),
                "{trigger} chain, nothing above 81"
            );
            if later != trigger {
                let e = run(
                    &sym(),
                    neutral(),
                    &[(trigger, rsi_of(80.0)), (later, rsi_of(83.0))],
                );
                assert_eq!(
                    e.weights,
                    weights(&[("UVXY", "1")]),
                    "{trigger} chain, {later} above 81"
                );
            }
            let e = run(&sym(), neutral(), &[(trigger, rsi_of(83.0))]);
            assert_eq!(e.weights, weights(&[("UVXY", "1")]), "{trigger} above 81");
        }
        // A later member above 81 in the SPY chain.
        let e = run(
            &sym(),
            neutral(),
            &[("SPY", rsi_of(80.0)), ("IOO", rsi_of(85.0))],
        );
        assert_eq!(e.weights, weights(&[("UVXY", "1")]));
        // VOX chain tests XLF.
        let e = run(&sym(), neutral(), &[("VOX", rsi_of(80.0))]);
        assert_eq!(e.weights, weights(HEDGE));
        let e = run(
            &sym(),
            neutral(),
            &[("VOX", rsi_of(80.0)), ("XLF", rsi_of(79.0))],
        );
        fact(&e, "rsi(XLF,10)", "<", 79.5);
        assert_eq!(e.weights, weights(HEDGE));
    }

    #[test]
    fn oversold_rebounds() {
        let e = run(&sym(), neutral(), &[("TQQQ", rsi_of(25.0))]);
        assert_eq!(e.weights, weights(&[("TQQQ", "1")]));
        let e = run(&sym(), neutral(), &[("SPY", rsi_of(25.0))]);
        fact(&e, "rsi(TQQQ,10)", ">", 30.0);
        assert_eq!(e.weights, weights(&[("UPRO", "1")]));
    }

    #[test]
    fn bull_holds_the_top_three_nuclear_names_by_90_day_return() {
        let e = run(
            &sym(),
            neutral(),
            &[
                ("SMR", rsi_of(70.0)),
                ("BWXT", rsi_of(65.0)),
                ("LEU", rsi_of(60.0)),
                ("EXC", rsi_of(40.0)),
                ("NLR", rsi_of(45.0)),
                ("OKLO", rsi_of(30.0)),
            ],
        );
        fact(&e, "moving-average-return(SMR,90)", ">", 0.0);
        // Equal remainders: the extra millionth goes to the first symbol.
        assert_eq!(
            e.weights,
            weights(&[
                ("BWXT", "0.333334"),
                ("LEU", "0.333333"),
                ("SMR", "0.333333")
            ])
        );
    }

    /// Bear: SPY under its 200-day average, no overbought or oversold trigger.
    fn bear(extra: &[(&'static str, Shape)]) -> Evaluation {
        let mut shapes = vec![("SPY", neutral().below_sma200())];
        shapes.extend_from_slice(extra);
        run(&sym(), neutral(), &shapes)
    }

    #[test]
    fn bear_psq_oversold_is_sqqq_in_both_groups() {
        let e = bear(&[("PSQ", rsi_of(30.0))]);
        assert_eq!(e.weights, weights(&[("SQQQ", "1")]));
    }

    #[test]
    fn bear_groups_are_weighted_by_inverse_volatility() {
        // QQQ crashed: Bear 1 → TLT vs PSQ (20-day RSI) → TQQQ; Bear 2: TQQQ above its
        // 20-day average → TQQQ too. Different legs (PSQ / SQQQ) split by volatility.
        let e = bear(&[
            ("QQQ", neutral().crash60()),
            ("TQQQ", rsi_of(60.0)),
            ("TLT", rsi_of(70.0).window(20)),
            ("PSQ", rsi_of(50.0).window(20)),
        ]);
        fact(&e, "cumulative-return(QQQ,60)", "<", -10.0);
        assert!(
            e.indicators["current-price(TQQQ)"] > e.indicators["moving-average-price(TQQQ,20)"]
        );
        assert_eq!(e.weights, weights(&[("TQQQ", "1")]));
        let e = bear(&[
            ("QQQ", neutral().crash60()),
            ("TLT", rsi_of(40.0).window(20)),
            ("PSQ", rsi_of(60.0).window(20)),
            ("TQQQ", rsi_of(40.0)),
        ]);
        fact(&e, "rsi(TLT,20)", "<", 50.0);
        // Bear 1 → PSQ; Bear 2: TQQQ below its 20-day average (RSI 40 trends down), TLT
        // weaker than PSQ → SQQQ.
        assert!(
            e.indicators["current-price(TQQQ)"] < e.indicators["moving-average-price(TQQQ,20)"]
        );
        let keys: Vec<&str> = e.weights.keys().map(Symbol::as_str).collect();
        assert_eq!(keys, ["PSQ", "SQQQ"]);
        assert_eq!(e.weights.values().copied().sum::<Decimal>(), Decimal::ONE);
        let vol1 = e.indicators["stdev-return(Bear 1,14)"];
        let vol2 = e.indicators["stdev-return(Bear 2,14)"];
        // Lower volatility, larger weight.
        assert_eq!(vol1 < vol2, e.weights["PSQ"] > e.weights["SQQQ"]);
    }

    #[test]
    fn bear_without_crash_follows_the_tqqq_trend_and_bond_strength() {
        // TQQQ above its 20-day average (rising pattern), TLT stronger than PSQ → TQQQ in both.
        let e = bear(&[
            ("TQQQ", rsi_of(60.0)),
            ("TLT", rsi_of(70.0).window(20)),
            ("PSQ", rsi_of(50.0).window(20)),
        ]);
        assert!(
            e.indicators["current-price(TQQQ)"] > e.indicators["moving-average-price(TQQQ,20)"]
        );
        assert_eq!(e.weights, weights(&[("TQQQ", "1")]));
        // TQQQ below its average; IEF (10) stronger than PSQ (20) → SQQQ in Bear 1;
        // Bear 2: TLT weaker than PSQ → SQQQ.
        let e = bear(&[
            ("TQQQ", rsi_of(35.0)),
            ("IEF", rsi_of(70.0)),
            ("TLT", rsi_of(40.0).window(20)),
            ("PSQ", rsi_of(50.0).window(20)),
        ]);
        fact(&e, "rsi(IEF,10)", ">", 60.0);
        let tqqq = e.indicators["current-price(TQQQ)"];
        let sma = e.indicators["moving-average-price(TQQQ,20)"];
        assert!(
            tqqq < sma,
            "crafted TQQQ should sit below its 20-day average: {tqqq} vs {sma}"
        );
        assert_eq!(e.weights, weights(&[("SQQQ", "1")]));
        // IEF weak, TLT strong → QQQ in both groups.
        let e = bear(&[
            ("TQQQ", rsi_of(35.0)),
            ("IEF", rsi_of(40.0)),
            ("TLT", rsi_of(70.0).window(20)),
            ("PSQ", rsi_of(50.0).window(20)),
        ]);
        assert_eq!(e.weights, weights(&[("QQQ", "1")]));
    }
}

mod kmlm {
    use super::*;

    fn sym() -> Symphony {
        load("kmlm.clj")
    }

    #[test]
    fn any_overbought_signal_is_uvxy() {
        for (symbol, level) in [
            ("QQQE", 80.0),
            ("VTV", 80.0),
            ("VOX", 80.0),
            ("TECL", 80.0),
            ("VOOG", 80.0),
            ("VOOV", 80.0),
            ("XLP", 76.0),
            ("TQQQ", 80.0),
            ("XLY", 81.0),
            ("FAS", 81.0),
            ("SPY", 81.0),
        ] {
            let e = run(&sym(), neutral(), &[(symbol, rsi_of(level))]);
            assert_eq!(e.weights, weights(&[("UVXY", "1")]), "{symbol} at {level}");
        }
        // XLP's threshold is 75, not 79.
        let e = run(&sym(), neutral(), &[("XLP", rsi_of(74.0))]);
        assert_ne!(e.weights, weights(&[("UVXY", "1")]));
    }

    #[test]
    fn oversold_rebounds() {
        for (symbol, level, holds) in [
            ("TQQQ", 25.0, "TECL"),
            ("SOXL", 25.0, "SOXL"),
            ("SPXL", 25.0, "SPXL"),
            ("LABU", 20.0, "LABU"),
        ] {
            let e = run(&sym(), neutral(), &[(symbol, rsi_of(level))]);
            assert_eq!(e.weights, weights(&[(holds, "1")]), "{symbol} at {level}");
        }
        let e = run(&sym(), neutral(), &[("LABU", rsi_of(27.0))]);
        assert_ne!(
            e.weights,
            weights(&[("LABU", "1")]),
            "LABU's threshold is 25"
        );
    }

    #[test]
    fn tech_strength_picks_the_two_weakest_of_tecl_soxl_svix() {
        let e = run(
            &sym(),
            neutral(),
            &[
                ("XLK", rsi_of(60.0)),
                ("KMLM", rsi_of(40.0)),
                ("TECL", rsi_of(70.0)),
                ("SOXL", rsi_of(45.0)),
                ("SVIX", rsi_of(35.0)),
            ],
        );
        assert_eq!(e.weights, weights(&[("SOXL", "0.5"), ("SVIX", "0.5")]));
    }

    #[test]
    fn trend_strength_picks_the_stronger_of_sqqq_tlt() {
        let e = run(
            &sym(),
            neutral(),
            &[
                ("XLK", rsi_of(40.0)),
                ("KMLM", rsi_of(60.0)),
                ("SQQQ", rsi_of(45.0)),
                ("TLT", rsi_of(55.0)),
            ],
        );
        assert_eq!(e.weights, weights(&[("TLT", "1")]));
        let e = run(
            &sym(),
            neutral(),
            &[
                ("XLK", rsi_of(40.0)),
                ("KMLM", rsi_of(60.0)),
                ("SQQQ", rsi_of(55.0)),
                ("TLT", rsi_of(45.0)),
            ],
        );
        assert_eq!(e.weights, weights(&[("SQQQ", "1")]));
    }
}

#[test]
fn ties_in_a_filter_are_broken_by_symbol() {
    let text = r#"(defsymphony "t" {} (filter (rsi {:window 10}) (select-top 1) [(asset "BBB") (asset "AAA")]))"#;
    let e = run(&parse_symphony(text).unwrap(), neutral(), &[]);
    assert_eq!(e.weights, weights(&[("AAA", "1")]));
}

#[test]
fn nested_weights_multiply() {
    let text = r#"(defsymphony "t" {} (weight-equal [(weight-specified 0.75 (asset "AAA") 0.25 (asset "BBB")) (asset "CCC")]))"#;
    let e = run(&parse_symphony(text).unwrap(), neutral(), &[]);
    assert_eq!(
        e.weights,
        weights(&[("AAA", "0.375"), ("BBB", "0.125"), ("CCC", "0.5")])
    );
}

#[test]
fn short_history_is_an_error_with_its_location() {
    let text = "(defsymphony \"t\" {}\n  (if (> (rsi \"AAA\" {:window 400}) 50) [(asset \"AAA\")] [(asset \"BBB\")]))";
    let symphony = parse_symphony(text).unwrap();
    let mut data = MarketData::default();
    for s in ["AAA", "BBB"] {
        data.series
            .insert(Symbol::from(s), Arc::new(series(s, &closes(neutral()))));
    }
    let err = evaluate(&symphony, &data, as_of()).unwrap_err().to_string();
    assert_eq!(
        err,
        "2:10: rsi(AAA,400): rsi with window 400 needs 401 bars of history, 300 available"
    );
}
