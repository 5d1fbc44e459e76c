"""Developer tools: build, local stack, demo, benchmarks, docs; run each with `python -m scripts.<name>`."""
