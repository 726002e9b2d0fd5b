; KMLM: volatility on any overbought signal, leveraged rebounds when oversold,
; else a tech-versus-trend switch. All RSIs are window 10; the first matching rule wins.
(defsymphony "KMLM" {:asset-class "EQUITIES" :rebalance-threshold 0.1}
  (weight-equal
    [(if (> (rsi "QQQE" {:window 10}) 79) [(asset "UVXY")]
     [(if (> (rsi "VTV" {:window 10}) 79) [(asset "UVXY")]
      [(if (> (rsi "VOX" {:window 10}) 79) [(asset "UVXY")]
       [(if (> (rsi "TECL" {:window 10}) 79) [(asset "UVXY")]
        [(if (> (rsi "VOOG" {:window 10}) 79) [(asset "UVXY")]
         [(if (> (rsi "VOOV" {:window 10}) 79) [(asset "UVXY")]
          [(if (> (rsi "XLP" {:window 10}) 75) [(asset "UVXY")]
           [(if (> (rsi "TQQQ" {:window 10}) 79) [(asset "UVXY")]
            [(if (> (rsi "XLY" {:window 10}) 80) [(asset "UVXY")]
             [(if (> (rsi "FAS" {:window 10}) 80) [(asset "UVXY")]
              [(if (> (rsi "SPY" {:window 10}) 80) [(asset "UVXY")]
               [(if (< (rsi "TQQQ" {:window 10}) 30) [(asset "TECL")]
                [(if (< (rsi "SOXL" {:window 10}) 30) [(asset "SOXL")]
                 [(if (< (rsi "SPXL" {:window 10}) 30) [(asset "SPXL")]
                  [(if (< (rsi "LABU" {:window 10}) 25) [(asset "LABU")]
                   [(if (> (rsi "XLK" {:window 10}) (rsi "KMLM" {:window 10}))
                      [(filter (rsi {:window 10}) (select-bottom 2)
                         [(asset "TECL") (asset "SOXL") (asset "SVIX")])]
                      [(filter (rsi {:window 10}) (select-top 1)
                         [(asset "SQQQ") (asset "TLT")])])])])])])])])])])])])])])])])])]))
