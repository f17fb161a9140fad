"""The core: everything the nodes use (taxonomy, decision math, ranking, rules, the KB and its embedder, serving
voters, the LLM client, feedback and review stores, checkpoints, config, errors). It imports nothing from graph/,
nodes/ or the programs above it."""
