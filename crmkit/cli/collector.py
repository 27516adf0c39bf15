"""The cyclic garbage collector while a ``crmkit`` command starts, and when it exits.

Opening a CRM creates several hundred thousand objects that live until the process ends
(SQLAlchemy, the models and their mappers, the enabled plugins) and frees almost none of
them. Python's cyclic collector runs every few hundred allocations and, as the survivors
pile up, walks all of them again and again; at exit it walks them once more. On the 2-core
test machine that was about 0.15 s of a 0.58 s ``crmkit contacts list --limit 1`` (issue
22, docs/benchmarks.md "CLI start-up"). So the console script (and only it: tests and code
that import crmkit keep their collector as it is):

* turns the collector off when it starts (:func:`pause_during_start_up`);
* once the CRM is open, freezes what start-up made (``gc.freeze``: those objects are never
  scanned again, as Instagram's web servers do with theirs) and turns the collector back on
  for what the command itself does (:func:`resume_after_start_up`), so a long-running
  command (``api serve``, the relay) collects as usual;
* at exit, freezes what is left (:func:`freeze_at_exit`): the interpreter's teardown then
  frees the objects by reference counting without one last walk over all of them.

Reference counting still frees every object that is not in a cycle at once; only cycles
made while the command starts wait, until the CRM is open or the command ends.
"""

from __future__ import annotations

import gc

_paused = False


def pause_during_start_up() -> None:
    """Turn the cyclic collector off until :func:`resume_after_start_up` (if it is on)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume_after_start_up() -> None:
    """Freeze the objects alive now and turn the collector back on, if
    :func:`pause_during_start_up` turned it off; otherwise do nothing."""
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def freeze_at_exit() -> None:
    """Resume the collector if it is paused, and freeze every object alive, before the
    interpreter exits."""
    resume_after_start_up()
    gc.freeze()


__all__ = ["freeze_at_exit", "pause_during_start_up", "resume_after_start_up"]
