"""swarmlab: many swarmd hosts on one machine, one network namespace each, on an isolated
underlay. `Lab` drives a lab from Python; `swarmlab` (swarmlab.main) is its CLI;
`swarmlab.testing.running_lab` gives tests a fresh lab that is always removed."""

from swarmlab.lab import Lab
from swarmlab.layout import LAB_ROOT, LabError, LabExists

__all__ = ["LAB_ROOT", "Lab", "LabError", "LabExists"]
