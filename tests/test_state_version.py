"""Specification: a snapshot is restored only by a release that reads its state layout (docs/live.md).

The Site's structs pickle their fields by position, so a snapshot of another layout would fill the wrong fields. A
snapshot carries the state version; the layout is pinned to the version here, so changing it means a new version.
"""

from __future__ import annotations

import pickle

import pytest

from dataflows.interlock_flow import SiteLogic, SnapshotMismatch, restore_site
from interlock.site import Site
from interlock.state_version import STATE_LAYOUT, STATE_VERSION, state_layout
from site_records import HotWorkSite


def test_the_state_layout_is_the_one_of_its_version():
    layout = state_layout()
    assert layout == STATE_LAYOUT, (
        f"the Site's state layout changed ({layout}): a snapshot of the last release would be restored into the "
        f"wrong fields; raise interlock.state_version.STATE_VERSION and set STATE_LAYOUT = {layout!r}"
    )


def test_a_snapshot_of_this_release_restores_the_same_decisions():
    site = HotWorkSite().started()
    snapshot = SiteLogic(site.site, "record").snapshot()
    restored = restore_site(snapshot)
    assert restored.permits["HW-1"].enabled and restored.chain.prev == site.site.chain.prev


@pytest.mark.parametrize("snapshot", [
    pickle.dumps(Site()),  # a release before versioned snapshots
    pickle.dumps((STATE_VERSION - 1, Site())),
    b"not a pickle",
])
def test_a_snapshot_of_another_state_version_is_refused_with_the_upgrade_to_do(snapshot):
    with pytest.raises(SnapshotMismatch, match="planned stop.*--init-recovery"):
        restore_site(snapshot)
