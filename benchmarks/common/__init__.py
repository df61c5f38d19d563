"""What the benchmarks share: where speech is in a clip (signal), synthetic voices (synth),
summary statistics (stats), CPU and memory sampling (cpu), the clock of a played file (clock)
and a PulseAudio sink of their own (pulse)."""
