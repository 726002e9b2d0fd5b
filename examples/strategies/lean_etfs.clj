; A rotation over symbols of the LEAN sample data (examples/lean) whose daily
; series have no long gaps: used by tests and benchmarks on real history (2000-2021).
(defsymphony "LEAN sample rotation" {:asset-class "EQUITIES"}
  (if (> (current-price "SPY") (moving-average-price "SPY" {:window 200}))
    [(weight-specified
       0.7 (filter (cumulative-return {:window 60}) (select-top 3)
             [(asset "SPY") (asset "IWM") (asset "AAPL") (asset "IBM") (asset "BAC")])
       0.3 (if (> (rsi "IWM" {:window 10}) 79)
             [(asset "SPY")]
             [(weight-inverse-volatility 20 [(asset "IWM") (asset "SPY")])]))]
    [(if (< (rsi "SPY" {:window 10}) 30)
       [(asset "SPY")]
       [(filter (max-drawdown {:window 60}) (select-bottom 2)
          [(asset "IBM") (asset "BAC") (asset "AIG") (asset "SPY")])])]))
