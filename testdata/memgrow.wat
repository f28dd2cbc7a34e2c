;; memgrow.wat: memory.grow against the engine's page limit.
(module
  ;; No declared maximum, so the engine's MemoryLimitPages is the maximum.
  (memory 1)

  ;; grow(n) grows memory by n pages and returns the old size in pages, or -1
  ;; when the grow is refused (that is not a trap).
  (func (export "grow") (param $n i32) (result i32)
    (memory.grow (local.get $n))))
