"""Reading fine-tuning datasets: one streaming reader and one normaliser, shared by audit and trainer."""

from core.data.formats import FORMATS, Message, Sample, detect_format, normalise
from core.data.reader import RawRecord, iter_raw

__all__ = ["FORMATS", "Message", "RawRecord", "Sample", "detect_format", "iter_raw", "normalise"]
