;; types.wat: exports whose types the engine cannot pass (v128, externref)
;; beside one it can.
(module
  (func (export "vec") (param v128))
  (func (export "ref") (param externref))
  (func (export "ok") (result i32)
    (i32.const 1)))
