; Nuclear: overbought chains into volatility, oversold rebounds, a nuclear-energy
; momentum basket in bull markets and two inverse-volatility-weighted bear groups.
; All RSIs are window 10 unless noted; the first matching rule wins.
(defsymphony "Nuclear" {:asset-class "EQUITIES" :rebalance-threshold 0.1}
  (weight-equal
    [(if (> (rsi "SPY" {:window 10}) 79)
       [(if (> (rsi "SPY" {:window 10}) 81) [(asset "UVXY")]
          [(if (> (rsi "IOO" {:window 10}) 81) [(asset "UVXY")]
             [(if (> (rsi "TQQQ" {:window 10}) 81) [(asset "UVXY")]
                [(if (> (rsi "VTV" {:window 10}) 81) [(asset "UVXY")]
                   [(if (> (rsi "XLF" {:window 10}) 81) [(asset "UVXY")]
                      [(weight-specified 0.75 (asset "UVXY") 0.25 (asset "BTAL"))])])])])])]
       [(if (> (rsi "IOO" {:window 10}) 79)
          [(if (> (rsi "IOO" {:window 10}) 81) [(asset "UVXY")]
             [(if (> (rsi "TQQQ" {:window 10}) 81) [(asset "UVXY")]
                [(if (> (rsi "VTV" {:window 10}) 81) [(asset "UVXY")]
                   [(if (> (rsi "XLF" {:window 10}) 81) [(asset "UVXY")]
                      [(weight-specified 0.75 (asset "UVXY") 0.25 (asset "BTAL"))])])])])]
          [(if (> (rsi "TQQQ" {:window 10}) 79)
             [(if (> (rsi "TQQQ" {:window 10}) 81) [(asset "UVXY")]
                [(if (> (rsi "VTV" {:window 10}) 81) [(asset "UVXY")]
                   [(if (> (rsi "XLF" {:window 10}) 81) [(asset "UVXY")]
                      [(weight-specified 0.75 (asset "UVXY") 0.25 (asset "BTAL"))])])])]
             [(if (> (rsi "VTV" {:window 10}) 79)
                [(if (> (rsi "VTV" {:window 10}) 81) [(asset "UVXY")]
                   [(if (> (rsi "XLF" {:window 10}) 81) [(asset "UVXY")]
                      [(weight-specified 0.75 (asset "UVXY") 0.25 (asset "BTAL"))])])]
                [(if (> (rsi "XLF" {:window 10}) 79)
                   [(if (> (rsi "XLF" {:window 10}) 81) [(asset "UVXY")]
                      [(weight-specified 0.75 (asset "UVXY") 0.25 (asset "BTAL"))])]
                   [(if (> (rsi "VOX" {:window 10}) 79)
                      [(if (> (rsi "XLF" {:window 10}) 81) [(asset "UVXY")]
                         [(weight-specified 0.75 (asset "UVXY") 0.25 (asset "BTAL"))])]
                      [(if (< (rsi "TQQQ" {:window 10}) 30)
                         [(asset "TQQQ")]
                         [(if (< (rsi "SPY" {:window 10}) 30)
                            [(asset "UPRO")]
                            [(if (> (current-price "SPY") (moving-average-price "SPY" {:window 200}))
                               [(filter (moving-average-return {:window 90}) (select-top 3)
                                  [(asset "SMR") (asset "BWXT") (asset "LEU")
                                   (asset "EXC") (asset "NLR") (asset "OKLO")])]
                               [(weight-inverse-volatility 14
                                  [(group "Bear 1"
                                     [(if (< (rsi "PSQ" {:window 10}) 35)
                                        [(asset "SQQQ")]
                                        [(if (< (cumulative-return "QQQ" {:window 60}) -10)
                                           [(if (> (rsi "TLT" {:window 20}) (rsi "PSQ" {:window 20}))
                                              [(asset "TQQQ")] [(asset "PSQ")])]
                                           [(if (> (current-price "TQQQ") (moving-average-price "TQQQ" {:window 20}))
                                              [(if (> (rsi "TLT" {:window 20}) (rsi "PSQ" {:window 20}))
                                                 [(asset "TQQQ")] [(asset "SQQQ")])]
                                              [(if (> (rsi "IEF" {:window 10}) (rsi "PSQ" {:window 20}))
                                                 [(asset "SQQQ")]
                                                 [(if (> (rsi "TLT" {:window 20}) (rsi "PSQ" {:window 20}))
                                                    [(asset "QQQ")] [(asset "SQQQ")])])])])])])
                                   (group "Bear 2"
                                     [(if (< (rsi "PSQ" {:window 10}) 35)
                                        [(asset "SQQQ")]
                                        [(if (> (current-price "TQQQ") (moving-average-price "TQQQ" {:window 20}))
                                           [(if (> (rsi "TLT" {:window 20}) (rsi "PSQ" {:window 20}))
                                              [(asset "TQQQ")] [(asset "SQQQ")])]
                                           [(if (> (rsi "TLT" {:window 20}) (rsi "PSQ" {:window 20}))
                                              [(asset "QQQ")] [(asset "SQQQ")])])])])])])])])])])])])])])]))
