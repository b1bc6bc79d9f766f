"""Tie-off at height: since when a harness has been untied at height, counting stale data at height as untied."""

from __future__ import annotations

import msgspec

from interlock.config import SiteConfig


class HarnessTrack(msgspec.Struct, gc=False):
    """The latest trusted report of one harness (record time), and since when it is untied at height."""

    last_ts: int
    height_mm: int
    tied: bool
    untied_since: int | None

    def observe(self, now: int, height_mm: int, tied: bool, config: SiteConfig) -> None:
        """A new trusted report; a silence at height just before an untied report counts as untied too."""
        if height_mm >= config.harness_height_min_mm and not tied:
            if self.untied_since is None:
                silent_at_height = (
                    self.height_mm >= config.harness_height_min_mm and now - self.last_ts > config.harness_stale_ms
                )
                self.untied_since = self.last_ts if silent_at_height else now
        else:
            self.untied_since = None
        self.last_ts, self.height_mm, self.tied = now, height_mm, tied


def new_track(now: int, height_mm: int, tied: bool, config: SiteConfig) -> HarnessTrack:
    untied = height_mm >= config.harness_height_min_mm and not tied
    return HarnessTrack(now, height_mm, tied, now if untied else None)


def untied_since(track: HarnessTrack, now: int, config: SiteConfig) -> int | None:
    """Since when the wearer counts as untied at height at `now`, or None while tied off or below the height."""
    if track.height_mm < config.harness_height_min_mm:
        return None
    if track.untied_since is not None:
        return track.untied_since
    if is_stale(track, now, config):
        return track.last_ts
    return None


def is_stale(track: HarnessTrack, now: int, config: SiteConfig) -> bool:
    return now - track.last_ts > config.harness_stale_ms
