"""The words bootbot judges with: a boot's statuses, a check's verdicts and the exit status of
each, how a base was found, the lab's error; and the one rule of which entries count toward a
verdict. It imports nothing of bootbot, so that every part may use it."""
from __future__ import annotations

# How one boot ended (a boot's status), and, but for FAIL and TIMEOUT, how a check ended too.
PASS, FAIL, TIMEOUT, ERROR, SKIP = "pass", "fail", "timeout", "error", "skip"
# An entry whose boots of one commit passed and failed: never blamed; a check ending so.
FLAKY = "flaky"

# How a check ended, beside PASS, SKIP and ERROR (the lab failed: never the change's fault).
REGRESSION, APPLY_FAILED, BUILD_FAILED, REFUSED = "regression", "apply-failed", "build-failed", "refused"
# The change does not apply where bootbot guessed it goes, its own base being nowhere: no verdict
# on the change at all.
NO_BASE = "no-base"

# The exit status of `bootbot check` and `bootbot report` for each verdict.
EXIT_STATUS = {PASS: 0, SKIP: 0, FLAKY: 0, REGRESSION: 1, APPLY_FAILED: 1, BUILD_FAILED: 1, REFUSED: 1, ERROR: 2,
               NO_BASE: 3}

# How a change's base was found (bot/trees/base.py). Its own base-commit, or a commit whose files
# hold the blobs its patches were made on, is a known base, where a failure is the change's; a
# subject tag's branch or the default branch is a guess, where a failure blames no patch.
BY_BASE_COMMIT, BY_BLOBS, BY_TAG, BY_BRANCH = "base-commit", "blobs", "tag", "branch"
GUESSED = (BY_TAG, BY_BRANCH)
# In reply_on beside the verdicts: mail checks on a guessed base too (never by default).
ON_GUESSED_BASE = "guessed-base"

# The kinds of change: a series mailed to a list (applied with `git am`), or a branch's new commits.
MAILED, COMMITS = "mailed", "commits"


def counts(experimental: bool, strict_experimental: bool) -> bool:
    """Whether an entry decides the verdict: an experimental one only when the configuration
    says so (boot.strict_experimental)."""
    return strict_experimental or not experimental


def fails(status: str, experimental: bool, strict_experimental: bool) -> bool:
    """Whether a boot that ended in `status` fails the verdict."""
    return status != PASS and counts(experimental, strict_experimental)


def regressed(status: str, baseline: str, experimental: bool, strict_experimental: bool) -> bool:
    """Whether an entry that ended in `status` with the change, `baseline` on the base, broke: it
    failed every time with the change and passed on the base (a flip is no regression)."""
    return baseline == PASS and status in (FAIL, TIMEOUT) and counts(experimental, strict_experimental)


class LabError(Exception):
    """The lab failed, not the change (a host file or program missing, the sandbox not starting,
    the declarations not holding): the verdict is ERROR and nothing is blamed on the change."""
