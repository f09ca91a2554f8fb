"""Help texts of the ``harness`` command: each option's default, each command's exit codes.

`Help` is the formatter of every parser in `harness.cli`: epilogs keep their line breaks
(they are written as lists), and an option whose help does not say its default gets
"(default: X)", so a new option cannot forget it. `EPILOGS` holds the exit codes of the
subcommands whose modules do not define their own; ``tests/harness/test_cli_help.py``
checks that every ``--help`` has both.
"""

from __future__ import annotations

import argparse

__all__ = ["EPILOGS", "Help"]

# Every subcommand's --help ends with its exit codes (the CI contract of each).
EPILOGS = {
    "report": "exit codes: 0 the reports were written; 2 the JSON cannot be read or is not\n"
              "a run's report, or nothing was asked for (nothing written).",
    "stress": "exit codes: 0 nothing found (or a replayed counterexample now passes); 1 a\n"
              "counterexample found (or a replay still fails); 2 bad usage or configuration;\n"
              "130 (SIGINT) or 143 (SIGTERM) interrupted: what was found so far is printed\n"
              "and saved, every worker stopped.",
    "explore": "exit codes: 0 no violation in any state; 1 violations or a harness error;\n"
               "2 bad usage or configuration.",
    "soak": "exit codes: 0 no violation; 1 violations, no kill or a harness error; 2 bad\n"
            "usage; 130 (SIGINT) or 143 (SIGTERM) interrupted, after every worker was\n"
            "reaped and the sandbox removed.",
    "list": "exit codes: 0 listed; 2 a scenario file is invalid or the directory has none.",
}


class Help(argparse.RawDescriptionHelpFormatter):
    """Epilogs as written, and every option's default in its help: the help's own words
    when it already says it, else "(default: X)" for any default that is not None."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or not action.option_strings or action.required
                or action.default in (None, False, argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"
