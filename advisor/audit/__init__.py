"""Dataset audit: find what is wrong with training data before any GPU time is spent."""

from advisor.audit.report import AuditReport, Finding
from advisor.audit.run import audit_file

__all__ = ["AuditReport", "Finding", "audit_file"]
