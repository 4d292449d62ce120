"""HTTP routes: one module per object, plus operational endpoints."""
