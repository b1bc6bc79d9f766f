"""Tie-off at height: since when a harness has been untied at height, counting stale data at height as untied."""

from __future__ import annotations

import msgspec

from interlock.findings import Findings
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


def check_harnesses(findings: Findings, harnesses: list[str], tracks: dict[str, HarnessTrack], untrusted: dict[str, str],
                    enabled: bool, now: int, config: SiteConfig) -> None:
    """Every listed harness tied off at height (alert at 10 s untied, stop at 30 s); fresh, trusted data to start."""
    for device in harnesses:
        track = tracks.get(device)
        if track is None:
            findings.stop("HARNESS_DATA_STALE", f"{device} has not reported")
            continue
        distrusted = device in untrusted
        if distrusted and not enabled:
            findings.device_fault(untrusted[device], device)
            continue
        # An untrusted report says nothing about the hooks: like a silence, it counts from the last trusted one.
        stale = distrusted or is_stale(track, now, config)
        since = untied_since(track, now, config)
        if since is None and distrusted and track.height_mm >= config.harness_height_min_mm:
            since = track.last_ts
        if since is not None:
            untied = now - since
            how = "silent at height" if stale and track.untied_since is None else "untied at height"
            detail = f"{device} {how} {track.height_mm / 1000:g} m for {untied / 1000:.0f} s"
            if untied >= config.harness_untied_stop_ms:
                findings.stop("HARNESS_UNTIED", detail)
            elif untied >= config.harness_untied_alert_ms:
                findings.warn("HARNESS_UNTIED_WARNING", detail)
                findings.wake(since + config.harness_untied_stop_ms)
            else:
                findings.wake(since + config.harness_untied_alert_ms)
        elif stale and not enabled:
            findings.stop("HARNESS_DATA_STALE", f"{device} silent for {(now - track.last_ts) / 1000:.0f} s")
        if not stale:
            findings.wake(track.last_ts + config.harness_stale_ms + 1)
