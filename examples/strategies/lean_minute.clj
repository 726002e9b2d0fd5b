; For intraday replays of the LEAN sample: only SPY, IBM, AIG and BAC have minute bars
; (2013-10-04 to 2013-10-11).
(defsymphony "LEAN minute sample" {:asset-class "EQUITIES"}
  (if (> (current-price "SPY") (moving-average-price "SPY" {:window 200}))
    [(weight-specified
       0.6 (asset "SPY")
       0.4 (filter (rsi {:window 10}) (select-bottom 2)
             [(asset "IBM") (asset "AIG") (asset "BAC")]))]
    [(weight-inverse-volatility 20 [(asset "IBM") (asset "SPY")])]))
