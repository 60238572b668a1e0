"""Execution: running a study's trials, in this process or in workers anywhere.

- :mod:`~tuner.execution.run`: prepare a study (everything that can refuse, before a
  trial starts), join one from its stored spec, and run its trials.
- :mod:`~tuner.execution.worker`: the trial loop, one trial at a time from the queue.
- :mod:`~tuner.execution.supervisor`: local worker processes, pinned, watched, restarted.
- :mod:`~tuner.execution.ray_cluster` and :mod:`~tuner.execution.ray_launcher`: the
  workers as Ray actors (``tuner run --ray``), placed, sized and restarted by Ray.
- :mod:`~tuner.execution.signals`: Ctrl-C and SIGTERM, noted so TensorFlow cannot lose them.
"""
