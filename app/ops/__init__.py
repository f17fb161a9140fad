"""Operations built on the graph and the core: training (app.ops.training), evaluation and benchmarks (app.ops.eval),
soaks, the monitoring report, doctor, the demo and its feedback loop."""
