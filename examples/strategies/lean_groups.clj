; Eight groups ranked by their 60-day return, each scored on what it would have held
; each day (its own branch deciding on the day before): the benchmark of group scoring
; on the LEAN sample (examples/lean_groups.toml).
(defsymphony "LEAN sample groups" {:asset-class "EQUITIES"}
  (filter (moving-average-return {:window 20}) (select-top 2)
    [(group "trend SPY" [(if (> (current-price "SPY") (moving-average-price "SPY" {:window 50}))
                           [(asset "SPY")] [(asset "IBM")])])
     (group "trend QQQ" [(if (> (current-price "QQQ") (moving-average-price "QQQ" {:window 50}))
                           [(asset "QQQ")] [(asset "SPY")])])
     (group "small caps" [(if (< (rsi "IWM" {:window 10}) 30) [(asset "IWM")] [(asset "SPY")])])
     (group "banks" [(weight-equal [(asset "BAC") (asset "AIG")])])
     (group "tech pair" [(weight-equal [(asset "AAPL") (asset "IBM")])])
     (group "momentum" [(filter (cumulative-return {:window 60}) (select-top 1)
                          [(asset "AAPL") (asset "QQQ") (asset "SPY")])])
     (group "defensive" [(weight-inverse-volatility 20 [(asset "SPY") (asset "IBM")])])
     (group "emerging" [(if (> (current-price "EEM") (moving-average-price "EEM" {:window 100}))
                          [(asset "EEM")] [(asset "SPY")])])]))
