"""What an exporter hands back (advisor/export): a tool's config, the files beside it, and for every tunewise
setting the tool's key or the reason it cannot be expressed. Here, below the advisor, because each fine-tune
method's unit (core/methods.py) writes its own keys into it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Exported:
    tool: str
    config: dict  # the tool's config file (YAML)
    files: dict[str, str] = field(default_factory=dict)  # other files, by name, written beside it (dataset_info.json)
    mapped: list[tuple[str, str]] = field(default_factory=list)  # (tunewise key, the tool's key)
    not_expressed: list[tuple[str, str]] = field(default_factory=list)  # (tunewise key, why and what happens)
    command: str = ""  # how to run it

    def map(self, ours: str, theirs: str, value) -> None:
        self.config[theirs] = value
        self.mapped.append((ours, theirs))

    def skip(self, ours: str, why: str) -> None:
        self.not_expressed.append((ours, why))
