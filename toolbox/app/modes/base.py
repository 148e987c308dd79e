"""What every live mode is: the window's half and the worker's half of one feature.

A mode works either on frames (``FrameWork``: its request rides on each frame and its
answer comes back with it) or as a long job (``JobWork``: asked through its own mailbox,
advanced between frames). ``Mode`` is the window's half: the keys it adds, what it asks
for in a given state, the panes it draws while active and the data they draw from. The
registry (``toolbox.app.modes``) lists the modes once; the window, the worker and the
dashboard go through it, so a new mode is its module and one line there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from toolbox.app.protocol import BackwardNeed, FrameContext, Hints, Job, KeyAction, Slot

if TYPE_CHECKING:
    import numpy as np

    from toolbox.app.dashboard import DashboardView
    from toolbox.app.state import ViewState
    from toolbox.app.window import LiveApp, LiveSession
    from toolbox.app.worker import NetworkWorker


class FrameWork:
    """A frame mode's worker half, one per worker (it may keep compiled steps and the state
    a mode carries from frame to frame)."""

    def needs(self, request: Any) -> BackwardNeed | None:
        """The backward pass ``request`` needs on the frame; None: none."""
        return None

    def answer(self, request: Any, frame: FrameContext) -> Any:
        """This mode's part of the frame's answer (immutable)."""
        raise NotImplementedError

    def idle(self) -> None:
        """A frame came without this mode's request (the mode is off)."""


class JobWork:
    """A job mode's worker half, one per worker."""

    def begin(self, request: Any) -> tuple[list[tuple[str, Any]], Job | None]:
        """What ``request`` has at once, as (part, value) pairs (a unit's crops, an image from
        the folder), and the job that makes the rest, or None when nothing is left to make."""
        raise NotImplementedError

    def at_once(self, request: Any) -> dict[str, Any]:
        """Everything ``request`` asks for, made now, by part (headless recordings)."""
        found, job = self.begin(request)
        values = dict(found)
        if job is not None:
            job.advance(job.steps)
            values[""] = job.finish()
        return values


class Mode:
    """One live mode, the window's half (stateless: the state is the ViewState's, the
    bookkeeping the session's ``Slot``)."""

    name = ""
    kind = "frame"  # "frame" or "job"
    actions: tuple[KeyAction, ...] = ()
    panes: tuple[str, ...] = ()  # the dashboard panes it draws instead of the default while active

    def active(self, state: "ViewState") -> bool:
        return False

    # -- the window's side ------------------------------------------------------------------

    def want(self, app: "LiveApp", state: "ViewState") -> Any:
        """Frame modes: the request this state makes of each frame (None: off)."""
        return None

    def drive(self, app: "LiveApp", session: "LiveSession", slot: Slot) -> Any:
        """Job modes, on each pass of the UI loop: the request to send now, ``None`` to stop
        the one running, or ``NOTHING`` to leave the worker as it is."""
        return NOTHING

    def on_action(self, app: "LiveApp", session: "LiveSession", state: "ViewState",
                  action: str) -> "ViewState | None":
        """An action of this mode without a pure rule (it reads the results on screen): the
        state after it, from ``state`` (the state the key made)."""
        return None

    def on_click(self, app: "LiveApp", session: "LiveSession", x: int, y: int) -> "ViewState | None":
        """A click on one of its panes while active: the new state, or None when it is not its."""
        return None

    def view(self, app: "LiveApp", session: "LiveSession") -> Any:
        """What its panes draw, immutable (part of the DashboardView)."""
        return None

    def draw(self, canvas: "np.ndarray", view: "DashboardView", data: Any, keys: Hints) -> None:
        """Draw its panes (called while active, or always for a mode whose pane is its own)."""

    def worker_side(self, worker: "NetworkWorker") -> FrameWork | JobWork | None:
        return None


NOTHING = object()  # Mode.drive: nothing to send
