"""Dataset audit: find what is wrong with training data before any GPU time is spent."""

from advisor.audit.report import AuditReport, Finding, Signals

__all__ = ["AuditReport", "Finding", "Signals", "audit_file"]


def __getattr__(name: str):
    if name == "audit_file":  # the pass imports numpy and the checks: only when an audit runs
        from advisor.audit.run import audit_file

        return audit_file
    raise AttributeError(name)
