; The default strategy as a sweep template: {{trend_window}} and {{top_n}} come from a
; grid (examples/sweep_grid.toml); `alchemiser sweep` fills them in per variant.
; 60% momentum sleeve gated by Apple's 200-day trend, 40% inverse-volatility pair of groups.
(defsymphony "Bundled megacaps" {:asset-class "EQUITIES"}
  (weight-specified
    0.6 (if (> (current-price "AAPL") (moving-average-price "AAPL" {:window {{trend_window}}}))
          [(filter (moving-average-return {:window 60}) (select-top {{top_n}})
             [(asset "AAPL" "Apple") (asset "AMZN" "Amazon") (asset "GOOG" "Alphabet")
              (asset "META" "Meta Platforms") (asset "NFLX" "Netflix") (asset "NVDA" "Nvidia")])]
          [(filter (stdev-return {:window 20}) (select-bottom 2)
             [(asset "AAPL") (asset "GOOG") (asset "AMZN")])])
    0.4 (weight-inverse-volatility 20
          [(group "platforms" [(asset "GOOG") (asset "META")])
           (group "devices and chips"
             [(if (> (rsi "NVDA" {:window 10}) 80)
                [(asset "AAPL")]
                [(weight-equal [(asset "AAPL") (asset "NVDA")])])])])))
