"""Workstations: VMs started from a labimage image for one owner each, driven by the same
queue-and-Table design as builds, with their own small table of moves (machine.py)."""
