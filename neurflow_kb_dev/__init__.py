"""Development support of neurflow-kb, not shipped in its wheel: training the world's models
(`world_train`, `python -m neurflow_kb_dev.world_train`), fidelity metrics against the planted concepts
(`fidelity`) and synthetic circuits shaped like NeurFlow artifacts (`synthetic`) for the tests and
benchmarks. It imports `neurflow_kb`; `neurflow_kb` never imports it."""
