"""The case pool: import and validate case files, categorise, and size a trial's strata.

- `columns`: the columns of a case file and their Danish spellings;
- `importer`: `read_case_file` (validate everything, write nothing) and `write_cases`;
- `summary`: the barrier x months-band cross-table, benefit-type counts, filtered lists;
- `pool`: eligibility of cases for a protocol and the sizes of its strata.
"""

from trials.cases.importer import (
    CaseFile,
    CaseRecord,
    ImportResult,
    import_cases,
    read_case_file,
    write_cases,
)
from trials.cases.pool import (
    StrataReport,
    eligibility_conditions,
    is_eligible,
    protocol_stratum_sizes,
    trial_stratum_sizes,
)
from trials.cases.summary import cross_table, list_cases, parse_bands

__all__ = [
    "CaseFile",
    "CaseRecord",
    "ImportResult",
    "StrataReport",
    "cross_table",
    "eligibility_conditions",
    "import_cases",
    "is_eligible",
    "list_cases",
    "parse_bands",
    "protocol_stratum_sizes",
    "read_case_file",
    "trial_stratum_sizes",
    "write_cases",
]
