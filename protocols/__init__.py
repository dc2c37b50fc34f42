"""The trial protocols shipped with trials, one TOML file per prøvehandling (installed as `trials.protocols`)."""
