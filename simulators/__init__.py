"""Simulated site: scenarios written as TOML, played into recordings that replay like `kcat -C -J` captures."""
