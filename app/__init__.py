"""labelgate. Layers, top to bottom (each imports only from those below it; `make lint` checks it with import-linter):

- app.cli      the `labelgate` command: parse, call, print
- app.ops      operations: training, eval and benchmarks, soaks, the monitoring report, doctor, demo
- app.service  the Python API (`Assistant`), the review page, the HTTP server, the LangChain surface
- graph        the machine (graph/builder.py) and its state (graph/state.py)
- nodes        one module per node
- app.core     what the nodes use: taxonomy, decision, ranking, rules, KB, voters, feedback, checkpoints, config, errors
"""
