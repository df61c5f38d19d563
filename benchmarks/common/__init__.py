"""What the benchmarks share: where speech is in a clip (signal), synthetic voices (synth),
whisper.cpp calls (engine) and the faster-whisper baseline (baseline), summary statistics (stats),
CPU and memory sampling (cpu), the wall clock of a played file (clock), a PulseAudio sink of their
own (pulse) and where the shared recordings are (data)."""
