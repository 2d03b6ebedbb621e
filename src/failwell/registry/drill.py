"""The disaster-recovery drill of the registry, run on a scratch copy so nothing real is hurt:
copy the primary, destroy the copy, rebuild it from a replica, and prove that every version and
alias came back with the same checksums. Reports recovery time and recovery point."""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from failwell.errors import RegistryError
from failwell.registry.recovery import restore, verify_store
from failwell.registry.registry import Registry
from failwell.registry.stores import LocalStore


@dataclass
class DrillReport:
    source: str
    versions: int  # versions on the primary before the disaster
    restored: int  # versions back after the restore, checksums identical
    lost_versions: list[str] = field(default_factory=list)  # on the primary, not on the replica
    changed_aliases: list[str] = field(default_factory=list)  # alias that came back different
    replica_lag: float = 0.0  # seconds: age of the oldest change the replica had not received
    recovery_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost_versions or self.changed_aliases or self.problems)


def drill(registry: Registry, source: str, scratch: Path | None = None) -> DrillReport:
    """Run the drill against a copy of ``registry``'s primary (which must be a local folder)."""
    if not isinstance(registry.primary, LocalStore):
        raise RegistryError("the drill copies the primary; it must be a local folder")
    before = verify_store(registry.primary)
    if not before.versions:
        raise RegistryError("the primary holds no versions; nothing to drill")
    lag = next((x.seconds for x in registry.replicator.lag() if x.store == source), 0.0)
    base = Path(tempfile.mkdtemp(prefix="failwell-drill-", dir=scratch))
    try:
        copy = base / "primary"
        shutil.copytree(registry.primary.root, copy)
        scratch_registry = Registry(LocalStore(copy), registry.replicas)
        shutil.rmtree(copy)  # the disaster
        started = time.perf_counter()
        result = restore(scratch_registry, source)
        for ref in result.verified.aliases:  # every alias resolves to a readable version
            scratch_registry.resolve(ref)
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(base, ignore_errors=True)
    after = result.verified
    report = DrillReport(source, len(before.versions), 0, replica_lag=lag, recovery_seconds=seconds)
    for ref, digest in before.versions.items():
        if after.versions.get(ref) == digest:
            report.restored += 1
        else:
            report.lost_versions.append(ref)
    report.changed_aliases = [
        f"{a}: {v} → {after.aliases.get(a)}"
        for a, v in before.aliases.items()
        if after.aliases.get(a) != v
    ]
    report.problems = list(after.problems)
    return report
