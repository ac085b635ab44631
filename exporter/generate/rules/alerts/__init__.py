"""Alert builders, one module per SPEC 5 category: conditions and promtool scenarios."""
