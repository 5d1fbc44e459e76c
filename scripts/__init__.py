"""Developer tools, by purpose; run each with `python -m scripts.<package>.<module>`.

- `scripts.release`: the Lambda zips and the release artifacts;
- `scripts.local`: the local stack on the emulator, its demo, logs and tokens;
- `scripts.docs`: generators and checks of the README tables, contract tests and lint rules;
- `scripts.lab`: benchmarks, fault injection, soak, cold starts, costs, and the simulators they use.
"""
