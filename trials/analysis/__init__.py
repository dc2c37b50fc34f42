"""The effect analysis engine: survival analysis of time to self-sufficiency.

One core, two entrances. `trials.analysis.engine.analyse(frame, options)` takes a plain pandas
DataFrame (one row per randomized unit) and returns the JSON contract documented in
docs/analysis.md and shipped as `schema.json`. The flat-file entrance (`trials analyze`) builds
that frame from a CSV (`trials.analysis.frame`); the database entrance builds it from a trial.

Heavy libraries are imported inside functions so importing this package stays cheap.
"""
