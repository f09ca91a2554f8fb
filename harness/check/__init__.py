"""What a run means: the history of a run and the checker's verdicts, as pure functions.

Role (Jepsen's history and checker): `history` records every client call
(``invoke``/``ok``/``fail``/``info``), every intercepted file call and every fault;
`checker.check` turns a history into a verdict for every entry and the violations among
them (the verdict vocabulary is stated once, in `checker`); `_trace` is the walk over the
history the verdicts are read from, `_verdicts` and `causes` the sentences that explain
them, `promises` what a target says it does not promise, `outcome` what is not a verdict
about the target at all, `ledger` explore's incremental check, `words` the wording.

May import: nothing of the harness (the standard library only). Everything above reads
its results; nothing here knows how a run was made.
"""

from harness.check.checker import VERDICTS, VIOLATIONS, Result, Violation, check
from harness.check.history import DRAIN, NEMESIS, FaultEvent, FsOp, History, Op

__all__ = ["DRAIN", "NEMESIS", "VERDICTS", "VIOLATIONS", "FaultEvent", "FsOp", "History", "Op",
           "Result", "Violation", "check"]
