"""Follow-up outcomes: exit records and weekly benefit histories in, the analysis outcome out.

`derive` is the pure derivation, `exits` and `weekly` read and validate the two kinds of file,
`snapshots` stores each import as an immutable snapshot, `export` builds the analysis frame and
`followup` tells which follow-ups are due. See docs/outcomes.md.
"""
