;; sleep.wat: a guest that waits instead of computing. sleep_ms(ms) blocks
;; for ms milliseconds through WASI poll_oneoff with one relative clock
;; subscription, as a guest's sleep or a blocking read would, and returns
;; poll_oneoff's errno (0 on success). Calibration must count that time: a
;; worker's core is taken for it (issue 12, item 6).
(module
  (import "wasi_snapshot_preview1" "poll_oneoff"
    (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))

  (memory (export "memory") 1)

  ;; Layout: 0..47 the subscription, 64..95 the event written back, 96 the
  ;; number of events.
  ;;   subscription: userdata u64 @0, tag u8 @8 (0 = clock),
  ;;   clock id u32 @16 (1 = monotonic), timeout u64 @24 (ns),
  ;;   precision u64 @32, flags u16 @40 (0 = relative).
  (func (export "sleep_ms") (param $ms i32) (result i32)
    (i64.store (i32.const 0) (i64.const 0))
    (i32.store8 (i32.const 8) (i32.const 0))
    (i32.store (i32.const 16) (i32.const 1))
    (i64.store (i32.const 24)
      (i64.mul (i64.extend_i32_u (local.get $ms)) (i64.const 1000000)))
    (i64.store (i32.const 32) (i64.const 0))
    (i32.store16 (i32.const 40) (i32.const 0))
    (call $poll_oneoff (i32.const 0) (i32.const 64) (i32.const 1) (i32.const 96))))
