"""sbbench: benchmarking and ablation harness for Selective-Backprop and related example-selection methods."""
