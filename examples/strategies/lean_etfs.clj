; A rotation over the ten symbols of the LEAN sample data (../shared/data/lean):
; used by tests and benchmarks on real history (1998-2021).
(defsymphony "LEAN sample rotation" {:asset-class "EQUITIES" :rebalance-threshold 0.05}
  (if (> (current-price "SPY") (moving-average-price "SPY" {:window 200}))
    [(weight-specified
       0.7 (filter (cumulative-return {:window 60}) (select-top 3)
             [(asset "SPY") (asset "QQQ") (asset "IWM") (asset "EEM")
              (asset "AAPL") (asset "IBM")])
       0.3 (if (> (rsi "QQQ" {:window 10}) 79)
             [(asset "SPY")]
             [(weight-inverse-volatility 20 [(asset "QQQ") (asset "IWM")])]))]
    [(if (< (rsi "SPY" {:window 10}) 30)
       [(asset "SPY")]
       [(filter (max-drawdown {:window 60}) (select-bottom 2)
          [(asset "IBM") (asset "BAC") (asset "AIG") (asset "SPY")])])]))
