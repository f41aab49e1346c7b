"""The seeded crash-fault suite: a real ``stigmer local`` stack, a batch of executions, ``kill -9`` at seeded moments.

Run it as one command (full: 20 executions; ``--short`` is what CI runs through ``tests/test_faults_crash.py``)::

    python -m tests.faults --seed 7 --executions 20
    python -m tests.faults --seed 7 --short

Its sessions version (``tests.faults.sessions``) kills them around approvals and turn boundaries instead::

    python -m tests.faults --sessions 1 --short --seed 7
    python -m tests.faults --sessions 3 --turns 6 --seed 7

The same seed gives the same plan (which component is killed, after which execution started, how long
into it): a failure can be replayed. See ``docs/RELIABILITY.md`` ("Crash faults").
"""

from .suite import Report, plan_faults, run_suite

__all__ = ["Report", "plan_faults", "run_suite"]
