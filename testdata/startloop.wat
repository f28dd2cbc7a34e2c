;; startloop.wat: a start function that never returns, so instantiating it
;; hangs: compiling it is fine, calling any export never gets past
;; instantiation.
(module
  (func $start
    (loop $l (br $l)))
  (start $start)
  (func (export "noop")))
