; TECL: technology leverage in bull markets, volatility hedges on overbought spikes.
; All RSIs are window 10 unless noted; the first matching rule wins.
(defsymphony "TECL" {:asset-class "EQUITIES" :rebalance-threshold 0.1}
  (weight-equal
    [(if (> (current-price "SPY") (moving-average-price "SPY" {:window 200}))
       ; bull
       [(if (> (rsi "TQQQ" {:window 10}) 79)
          [(weight-specified 0.25 (asset "UVXY" "ProShares Ultra VIX Short-Term Futures ETF")
                             0.75 (asset "BIL" "SPDR Bloomberg 1-3 Month T-Bill ETF"))]
          [(if (> (rsi "SPY" {:window 10}) 80)
             [(weight-specified 0.25 (asset "UVXY") 0.75 (asset "BIL"))]
             ; KMLM switch
             [(if (> (rsi "XLK" {:window 10}) (rsi "KMLM" {:window 10}))
                [(if (> (rsi "XLK" {:window 10}) 81)
                   [(asset "BIL")]
                   [(asset "TECL" "Direxion Daily Technology Bull 3x Shares")])]
                [(if (< (rsi "XLK" {:window 10}) 29)
                   [(asset "TECL")]
                   [(asset "BIL")])])])])]
       ; bear
       [(if (< (rsi "TQQQ" {:window 10}) 31)
          [(asset "TECL")]
          [(if (< (rsi "SPXL" {:window 10}) 29)
             [(asset "SPXL" "Direxion Daily S&P 500 Bull 3X Shares")]
             [(if (> (rsi "UVXY" {:window 10}) 74)
                [(if (> (rsi "UVXY" {:window 10}) 84)
                   [(weight-specified 0.15 (asset "UVXY") 0.85 (asset "BIL"))]
                   [(asset "BIL")])]
                ; KMLM switch, last branch: the one of SQQQ, BSV with the highest RSI(9)
                [(if (> (rsi "XLK" {:window 10}) (rsi "KMLM" {:window 10}))
                   [(if (> (rsi "XLK" {:window 10}) 81)
                      [(asset "BIL")]
                      [(asset "TECL")])]
                   [(if (< (rsi "XLK" {:window 10}) 29)
                      [(asset "TECL")]
                      [(filter (rsi {:window 9}) (select-top 1)
                         [(asset "SQQQ" "ProShares UltraPro Short QQQ")
                          (asset "BSV" "Vanguard Short-Term Bond ETF")])])])])])])])]))
