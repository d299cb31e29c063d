"""Transfers between tasks (paper Sec. 3.2-3.3) and the whole pipeline (`make taxonomy`).

- `readout.py`: the transfer function and its stacked (vmapped) form.
- `training.py`: task networks, from-scratch baselines and readouts, through the one loop.
- `views.py`: the synthetic dataset, decoded once into arrays.
- `affinity.py`: held-out losses -> AHP affinities, Quality, Gain -> an `AffinityTable`.
- `gates.py`: whether a run carries signal (networks vs baselines, transfers vs random,
  known answers, agreement with the paper), with cluster-bootstrap intervals.
- `stages.py`, `pipeline.py`: resumable stages; `taskonomy taxonomy` / `make taxonomy`.
"""
