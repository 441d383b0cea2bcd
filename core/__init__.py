"""What the advisor and the trainer share, below both of them: the errors and files every command reads and writes,
the data reader (formats, layouts, containers), the fine-tune method registry, the memory estimator, and the
contracts handed from one side to the other (the training config, the probe's report, the eval report).

Layers point one way: the command line (advisor/cli) calls the advisor (ask, audit, recommend, export) and the
trainer (train, merge, eval, probe, demo); both of them call core; core imports neither
(tests/test_architecture.py)."""
