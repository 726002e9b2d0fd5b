; A second strategy on the bundled symbols, for the two-file example (examples/two_files.toml):
; the two strongest of the six over the last 90 sessions, equally weighted.
(defsymphony "Bundled momentum" {:asset-class "EQUITIES"}
  (filter (cumulative-return {:window 90}) (select-top 2)
    [(asset "AAPL") (asset "AMZN") (asset "GOOG") (asset "META") (asset "NFLX") (asset "NVDA")]))
