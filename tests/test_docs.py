"""The documents operators rely on stay in step with the code."""

from __future__ import annotations

from pathlib import Path

from interlock.config import SiteConfig, load_config
from interlock.fault_catalog import CATALOG, catalog_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_the_fault_catalog_document_is_generated_from_the_catalog():
    assert (DOCS / "faults.md").read_text(encoding="utf-8") == catalog_markdown()


def test_every_fault_code_has_a_meaning_and_an_operator_action():
    for code, kind in CATALOG.items():
        assert kind.grade in ("CRITICAL", "MAJOR", "MINOR", "INFO"), code
        assert kind.meaning.strip() and kind.action.strip(), code


def test_every_site_setting_is_documented():
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    for name in SiteConfig.__struct_fields__:
        assert f"`{name}`" in text, name


def test_the_documented_config_example_loads():
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    example = text.split("```toml", 1)[1].split("```", 1)[0]
    config = load_config(example)
    assert config.gas_limits.co_max == 20.0 and config.max_window_hours["confined_space"]["*"] == 24
    assert config.max_window_hours["hot_work"]["1"] == 8
