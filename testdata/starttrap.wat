;; starttrap.wat: a start function that traps, so every instantiation fails.
(module
  (func $start
    unreachable)
  (start $start)
  (func (export "noop")))
