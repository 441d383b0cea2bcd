"""The metrics `tunewise eval` and `tunewise probe` score (trainer/metrics.py computes them): a name the training
config's `eval.metric` and both commands' `--metric` accept. Light on purpose: the command line builds its
parser from it at start-up."""

METRICS = ("exact_match", "json", "classification", "chrf")
