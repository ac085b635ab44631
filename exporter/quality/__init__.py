"""Alert-quality benchmark (issue 15): simulated shops, injected incidents, scored rules.

The generated production rules are judged the way an on-call engineer meets them: raw exporter
series at a production scrape interval go into a real Prometheus, every alerting rule is
evaluated over weeks of simulated traffic, and the firing intervals are scored against the
incidents that were injected. Nothing here imports the generator: the rules are read from disk
as a user's Prometheus would read them.
"""
