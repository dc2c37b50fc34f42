"""The case pool: import and validate case files, categorise, and size a trial's strata.

- `columns`: the columns of a case file and their Danish spellings;
- `importer`: `read_case_file` (validate everything, write nothing) and `write_cases`;
- `summary`: the barrier x months-band cross-table, benefit-type counts, filtered lists;
- `pool`: eligibility of cases for a protocol and the sizes of its strata.

Import from the modules: the package imports nothing, so `trials enroll` (which needs only
`pool`) does not load the file readers.
"""
