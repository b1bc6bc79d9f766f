"""What a permit's evidence says at one moment, as the precondition checks collect it."""

from __future__ import annotations


class Findings:
    """Problems that stop the permit, warnings that only alert, device faults a stop rests on, reasons that wait
    (no fault), and the times at which time alone changes the answer."""

    __slots__ = ("problems", "warnings", "device_faults", "waiting", "wakes")

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []
        self.warnings: list[tuple[str, str]] = []
        self.device_faults: list[tuple[str, str]] = []
        self.waiting: list[tuple[str, str]] = []
        self.wakes: list[int] = []

    def stop(self, code: str, detail: str) -> None:
        """A failed precondition of the permit itself (its fault is about the permit)."""
        self.problems.append((code, detail))

    def warn(self, code: str, detail: str) -> None:
        self.warnings.append((code, detail))

    def device_fault(self, code: str, device: str) -> None:
        """A failed precondition resting on the open fault `code` about `device`."""
        self.device_faults.append((code, device))

    def wait(self, code: str, detail: str) -> None:
        """A precondition not yet met that is no fault (e.g. the gas pre-test still running)."""
        self.waiting.append((code, detail))

    def wake(self, at: int | None) -> None:
        if at is not None:
            self.wakes.append(at)

    def next_wake(self, now: int) -> int | None:
        future = [at for at in self.wakes if at > now]
        return min(future) if future else None
