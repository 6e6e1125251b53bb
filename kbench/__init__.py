"""kbench: reference TensorFlow/Keras training workflows and benchmarks."""
